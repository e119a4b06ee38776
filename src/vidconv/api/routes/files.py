"""GET /api/files/{task_id}/{token}/{name}: a task's files over plain GETs, for players.

A video player (hls.js, Safari, ffmpeg, a scrub-preview plugin) fetches a playlist and then
whatever it names, with no way to add a bearer token and no business holding one in a URL. So
the task's detail hands out a signed path segment (vidconv.api.security.sign_files: an HMAC
over the task and an expiry) that stands for the task's whole output folder: relative URIs
inside a playlist or a WebVTT index resolve under it and stay signed. Nothing here reads the
database: a deleted task's files are gone, and the signature is the only permission.
"""

from __future__ import annotations

import time

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidconv import outputs
from vidconv.api import security
from vidconv.api.deps import get_ctx
from vidconv.api.downloads import object_response
from vidconv.api.errors import ApiError
from vidconv.api.openapi import BINARY, ERROR, UNAVAILABLE, Operation
from vidconv.storage import ObjectNotFound, validate_key

# Players on other origins read these (the signature is the permission, not a cookie).
CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges"}


async def signed_file(request: Request) -> Response:
    ctx = get_ctx(request)
    task_id, token, name = (request.path_params[k] for k in ("task_id", "token", "name"))
    try:
        expires = security.check_files(ctx.settings, task_id, token)
    except security.BadSignature as exc:
        raise ApiError(403, f"{exc}; GET /api/tasks/{{id}} gives fresh links") from None
    try:
        key = validate_key(outputs.prefix(task_id) + name)
    except ValueError:
        raise ApiError(404, "no such file") from None
    try:
        await anyio.to_thread.run_sync(ctx.storage.size, key)
    except ObjectNotFound:
        raise ApiError(404, "no such file") from None
    headers = {**CORS, "Cache-Control": f"private, max-age={max(0, expires - int(time.time()))}"}
    return await object_response(request, ctx.storage, key, name, outputs.media_type(name),
                                 disposition="inline", headers=headers)


routes = [Route("/api/files/{task_id}/{token}/{name}", signed_file, methods=["GET", "HEAD"])]

OPERATIONS = [
    Operation("GET", "/api/files/{task_id}/{token}/{name}", "A task's file by its signed link",
              "signedFile",
              {200: BINARY, 206: BINARY, 403: ERROR, 404: ERROR, 416: ERROR, 503: UNAVAILABLE},
              headers={"Range": "one range, e.g. bytes=0-1023"},
              path_params={"token": {"type": "string", "pattern": r"^\d{1,12}-[A-Za-z0-9_-]+$",
                                     "maxLength": 80},
                           "name": {"type": "string", "minLength": 1, "maxLength": 255,
                                    "pattern": r"^[^/]+$"}}),
]
