"""Failure classes and their exit codes: 2 permanent (bad input), 1 retryable."""

from __future__ import annotations


class TranscodeError(Exception):
    """A failure with a machine-readable ``code`` and a one-sentence message.

    ``detail`` is what the tools said (ffmpeg's stderr), for operators: it goes to the log,
    never into the message a user reads.
    """

    exit_code = 1

    def __init__(self, code: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


class BadInput(TranscodeError):
    """Retrying can't help: the input, format or options are unacceptable."""

    exit_code = 2


class Retryable(TranscodeError):
    """Storage down, disk full, killed: another attempt may succeed."""

    exit_code = 1


class Terminated(BaseException):
    """SIGTERM/SIGINT arrived: stop ffmpeg, clean up, exit non-zero.

    A BaseException so that no ``except Exception`` on the way swallows it.
    """
