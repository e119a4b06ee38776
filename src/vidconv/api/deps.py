"""Request helpers shared by the route modules: the app context, the caller, the JSON body."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from vidconv.api.context import AppContext
from vidconv.api.errors import bad_request, unauthorized, unprocessable
from vidconv.api.security import InvalidToken, decode_token

MAX_JSON_BYTES = 64 * 1024


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def require_user(request: Request) -> str:
    """The id of the user whose bearer token came with the request, else 401."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    try:
        return decode_token(get_ctx(request).settings, token)
    except InvalidToken:
        raise unauthorized() from None


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else (bounded: bodies here are small)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise bad_request("the JSON body is too large")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    return data


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise unprocessable(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise unprocessable(f"{name} must be between {low} and {high}")
    return value
