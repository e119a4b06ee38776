"""What a service refuses, in its own terms; ``vidconv.api.errors`` maps each kind to HTTP.

Services take parsed values and raise these, never a status code: the one table from kind to
status (and headers) is ``vidconv.api.errors.SERVICE_STATUS``.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal the client caused or may retry; ``message`` is the one sentence it is told."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after  # seconds, where waiting helps


class BadInput(ServiceError):
    """The input can't be used as given: a path for a name, an empty file, a refused URL."""


class Invalid(ServiceError):
    """A field's value fails validation: an unknown format, an option out of range."""


class Unauthenticated(ServiceError):
    """The caller's token no longer names a user."""


class BadCredentials(ServiceError):
    """A log-in with a wrong password or an unknown name (the two look alike)."""


class NotFound(ServiceError):
    """No such thing of the caller's (someone else's looks exactly like a missing one)."""


class Conflict(ServiceError):
    """The request clashes with what exists: a taken name, a conversion not finished."""


class TooLarge(ServiceError):
    """An upload or a download beyond the configured limit."""

    def __init__(self, limit: int, message: str = "") -> None:
        super().__init__(message or f"the upload is larger than the limit of {limit} bytes")
        self.limit = limit


class ChecksumMismatch(ServiceError):
    """A chunk whose bytes do not match the checksum sent with it (nothing of it is kept)."""


class Unsupported(ServiceError):
    """A kind of body or media the service does not take."""


class Throttled(ServiceError):
    """Too many attempts lately; ``retry_after`` says when the next one is heard."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after)


class Unavailable(ServiceError):
    """Something the service needs is down for now; the same request may work later."""
