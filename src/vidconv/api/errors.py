"""JSON errors everywhere: ``{"message": ...}`` with the right status, never HTML or a trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("vidconv.api")


class ApiError(Exception):
    """An error the client caused (or may retry): rendered as ``{"message": ...}``."""

    def __init__(
        self, status_code: int, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, message)


def not_found(message: str = "task not found") -> ApiError:
    return ApiError(404, message)


def unauthorized(message: str = "missing or invalid token") -> ApiError:
    return ApiError(401, message, {"WWW-Authenticate": 'Bearer realm="vidconv"'})


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"the upload is larger than the limit of {limit} bytes")


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse({"message": exc.message}, exc.status_code, headers=exc.headers)


async def http_error(_request: Request, exc: Exception) -> Response:
    # Starlette's own 404 (no route) and 405 (wrong method) arrive here.
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"message": exc.detail}, exc.status_code, headers=exc.headers)


async def server_error(_request: Request, exc: Exception) -> Response:
    # A 5xx is a bug: log it with the trace, tell the client nothing internal.
    log.error("unhandled error", exc_info=exc)
    return JSONResponse({"message": "internal server error"}, 500)


EXCEPTION_HANDLERS = {ApiError: api_error, HTTPException: http_error, Exception: server_error}
