"""What can go wrong, in one sentence each, and the exit code that says which it was.

Every API error class has an exit code of its own, so that a script can tell "log in again"
from "the file is too large" from "try again later" without parsing messages.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # the conversion ended FAILURE (or was cancelled)
EXIT_USAGE = 2  # argparse's own
# HTTP status -> (exit code, what it means for the user)
EXIT_BY_STATUS: dict[int, tuple[int, str]] = {
    401: (3, "log in again (vidconv login)"),
    404: (4, "not found"),
    400: (5, "the server refused the request"),
    409: (6, "conflict"),
    413: (7, "the file is larger than this server accepts"),
    415: (8, "the server does not accept this kind of file"),
    422: (9, "invalid request"),
    429: (10, "too many attempts"),
    503: (11, "the server is unavailable for now"),
}
EXIT_SERVER = 12  # any other answer (a 5xx is a server bug)
EXIT_UNREACHABLE = 13  # no answer: connection refused, name unknown, timeout
EXIT_LOCAL = 14  # a local file: input missing or unreadable, output not writable
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "the conversion failed or was cancelled",
    EXIT_USAGE: "wrong arguments",
    **{code: f"{meaning} (HTTP {status})" for status, (code, meaning) in EXIT_BY_STATUS.items()},
    EXIT_SERVER: "the server answered with an error of its own (HTTP 5xx)",
    EXIT_UNREACHABLE: "the server could not be reached",
    EXIT_LOCAL: "a local file could not be read or written",
    EXIT_INTERRUPTED: "interrupted",
}


class ClientError(Exception):
    """An error for the user: one line, and the exit code."""

    def __init__(self, message: str, exit_code: int, status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.exit_code, self.status = message, exit_code, status
        self.details = details or {}  # for --json: what a script may want besides the message
        self.reason = ""  # the server's own message, when it is the server that said no


def api_error(status: int, message: str, retry_after: str | None = None) -> ClientError:
    """The server's ``{"message": ...}`` answer as a ClientError with its class's exit code."""
    code, meaning = EXIT_BY_STATUS.get(status, (EXIT_SERVER, "the server failed"))
    text = message or meaning  # the server's messages are sentences of their own
    if status == 401:
        text = f"{text}; {meaning}"
    if retry_after and retry_after.isdigit():
        text += f" (try again in {retry_after} s)"
    error = ClientError(f"{text} [HTTP {status}]", code, status)
    error.reason = message
    return error


def unreachable(server: str, why: str) -> ClientError:
    return ClientError(f"cannot reach the server at {server}: {why} (is it running? set "
                       "--server or VIDCONV_SERVER)", EXIT_UNREACHABLE)


def local(message: str) -> ClientError:
    return ClientError(message, EXIT_LOCAL)
