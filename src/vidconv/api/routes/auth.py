"""/api/auth: the seed's signup and login."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vidconv.api.deps import get_ctx, read_json_object
from vidconv.api.services import users


async def signup(request: Request) -> Response:
    data = await read_json_object(request)
    # Hashing takes ~0.1 s of CPU: off the event loop.
    user_id = await anyio.to_thread.run_sync(users.signup, get_ctx(request).sessions, data)
    return JSONResponse({"message": "usuario creado exitosamente", "id": user_id}, 201)


async def login(request: Request) -> Response:
    data = await read_json_object(request)
    ctx = get_ctx(request)
    token, user_id = await anyio.to_thread.run_sync(users.login, ctx.sessions, ctx.settings, data)
    return JSONResponse({"message": "Inicio de sesión exitoso", "token": token, "id": user_id})


routes = [
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
]
