"""Request helpers shared by the route modules: the app context, the caller, the JSON body."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vidconv.api.context import AppContext
from vidconv.api.errors import bad_request, unauthorized, unprocessable
from vidconv.api.security import InvalidToken, decode_token

MAX_JSON_BYTES = 64 * 1024
Q = TypeVar("Q", bound=BaseModel)


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


def render(model: BaseModel, status: int = 200) -> Response:
    """A response encoded from its model (the one the OpenAPI document names)."""
    return JSONResponse(model.model_dump(mode="json"), status)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def query(request: Request, model: type[Q]) -> Q:
    """The query string as ``model``; 422 with a sentence for a value it refuses."""
    params = dict(request.query_params)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error.get("loc") else "query"
        if error["type"] in ("int_parsing", "int_type", "int_from_float"):
            raise unprocessable(f"{name} must be a whole number") from None
        if error["type"] == "missing" or error.get("input") == "":
            raise unprocessable(f"{name} is required") from None
        limits = error.get("ctx") or {}
        if error["type"] == "literal_error":
            raise unprocessable(f"{name} must be one of {limits.get('expected')}") from None
        if "ge" in limits or "le" in limits:
            field = model.model_fields[name].metadata
            low = next((m.ge for m in field if getattr(m, "ge", None) is not None), None)
            high = next((m.le for m in field if getattr(m, "le", None) is not None), None)
            raise unprocessable(f"{name} must be between {low} and {high}") from None
        raise unprocessable(f"{name}: {error['msg']}") from None
