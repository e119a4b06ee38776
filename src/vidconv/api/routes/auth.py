"""/api/auth: the seed's signup and login."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidconv.api.deps import client_address, get_ctx, read_json_object, render
from vidconv.api.openapi import ERROR, THROTTLED, UNAVAILABLE, Operation
from vidconv.api.schemas import LoggedIn, Login, SignedUp, Signup, decode
from vidconv.api.services import users


async def signup(request: Request) -> Response:
    data = decode(Signup, await read_json_object(request))
    # Hashing takes ~0.1 s of CPU: off the event loop.
    user_id = await anyio.to_thread.run_sync(
        users.signup, get_ctx(request).sessions, data.username, data.email, data.password1)
    return render(SignedUp(id=user_id), 201)


async def login(request: Request) -> Response:
    data = decode(Login, await read_json_object(request))
    ctx = get_ctx(request)
    token, user_id = await anyio.to_thread.run_sync(
        users.login, ctx.sessions, ctx.settings, ctx.throttle, data.username, data.password,
        client_address(request))
    return render(LoggedIn(token=token, id=user_id))


routes = [
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
]

OPERATIONS = [
    Operation("POST", "/api/auth/signup", "Create a user", "signup",
              {201: SignedUp, 400: ERROR, 409: ERROR, 422: ERROR, 503: UNAVAILABLE},
              body={"application/json": Signup}),
    Operation("POST", "/api/auth/login", "Get a token", "login",
              {200: LoggedIn, 400: ERROR, 401: ERROR, 422: ERROR, 429: THROTTLED,
               503: UNAVAILABLE},
              body={"application/json": Login}),
]
