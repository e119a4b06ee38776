"""JSON errors everywhere: ``{"message": ...}`` with the right status, never HTML or a trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vidconv.api.services.errors import (
    BadCredentials,
    BadInput,
    ChecksumMismatch,
    Conflict,
    Invalid,
    NotFound,
    ServiceError,
    Throttled,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unsupported,
)
from vidconv.storage import ObjectNotFound, StorageError

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


BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="vidconv"'}


def unauthorized(message: str = "missing or invalid token") -> ApiError:
    return ApiError(401, message, BEARER_CHALLENGE)


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse({"message": exc.message}, exc.status_code, headers=exc.headers)


# The one place a service's refusal becomes an HTTP status.
SERVICE_STATUS: dict[type[ServiceError], int] = {
    BadInput: 400,
    Unauthenticated: 401,
    BadCredentials: 401,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unsupported: 415,
    Invalid: 422,
    Throttled: 429,
    ChecksumMismatch: 460,  # tus's own status for it
    Unavailable: 503,
}


async def service_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    headers = dict(BEARER_CHALLENGE) if isinstance(exc, Unauthenticated) else {}
    retry_after = exc.retry_after
    if retry_after is None and isinstance(exc, Unavailable):
        retry_after = RETRY_AFTER_SECONDS
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"message": exc.message}, SERVICE_STATUS[type(exc)], headers=headers)


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


# How long a client should wait before retrying after a dependency outage (503).
RETRY_AFTER_SECONDS = 5


def _unavailable(message: str) -> Response:
    return JSONResponse({"message": message}, 503,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _is_sql_bug(exc: OperationalError | InterfaceError) -> bool:
    # SQLite reports schema/SQL mistakes ("no such table") as OperationalError too, with the
    # generic SQLITE_ERROR code; those are bugs (500), unlike busy/locked/cannot-open/I-O.
    return getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_ERROR"


async def database_unavailable(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OperationalError | InterfaceError)
    if _is_sql_bug(exc):
        raise exc  # not an outage: on to the 500 handler, trace logged
    log.warning("database unavailable: %s", exc.orig or exc)
    return _unavailable("the database is unavailable; try again shortly")


async def unexpected(_request: Request, exc: Exception) -> Response:
    raise exc  # a bug after all: on to the 500 handler like any other


async def storage_unavailable(_request: Request, exc: Exception) -> Response:
    log.warning("storage unavailable: %s", exc)
    return _unavailable("the file storage is unavailable; try again shortly")


# Looked up along the exception's MRO, so the most specific class wins: a missing object that
# escapes a handler is a bug (500), while any other StorageError is an outage (503).
EXCEPTION_HANDLERS = {
    ApiError: api_error,
    ServiceError: service_error,
    HTTPException: http_error,
    OperationalError: database_unavailable,
    InterfaceError: database_unavailable,
    ObjectNotFound: unexpected,
    StorageError: storage_unavailable,
    Exception: server_error,
}
