"""Logging of every vidconv process (API, operator, transcoder): text lines, or JSON lines.

``VIDCONV_LOG_FORMAT=json`` gives one JSON object a line (python-json-logger): ``time``,
``level``, ``logger``, ``message``, ``task_id`` where there is one, and whatever a caller passed
as ``extra``. The task id comes from ``extra={"task_id": ...}`` or from ``bind_task``, a context
variable: a request handler, an executor's worker or a kopf handler binds it, and everything it
logs from then on (asyncio tasks it starts and ``to_thread`` calls copy the context) carries it.
The transcoder binds the id its executor hands it in ``VIDCONV_TASK_ID``.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TextIO

from vidconv.settings import Settings

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TASK_ID: ContextVar[str | None] = ContextVar("vidconv_task_id", default=None)
# Record attributes that are not worth a JSON field: uvicorn's coloured copy of the message,
# and kopf's operator settings object and its flag for posting Kubernetes events.
_NOISE = ("color_message", "settings", "k8s_skip", "taskName")
# uvicorn's access line, "%s - "%s %s HTTP/%s" %d", as fields of their own too.
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


def bind_task(task_id: str | None) -> None:
    """Name the task the current context works on (its log records then carry ``task_id``)."""
    TASK_ID.set(task_id)


class _Context(logging.Filter):
    """Adds ``task_id`` from the context, and uvicorn's access line as fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_id", None) is None and (task := TASK_ID.get()) is not None:
            record.task_id = task
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) \
                and len(record.args) == len(_ACCESS_FIELDS):
            for name, value in zip(_ACCESS_FIELDS, record.args, strict=True):
                setattr(record, name, value)
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"VIDCONV_LOG_FORMAT must be one of {', '.join(FORMATS)}, "
                         f"not {log_format!r}")
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s", timestamp="time",
        rename_fields={"levelname": "level", "name": "logger"},
        reserved_attrs=[*RESERVED_ATTRS, *_NOISE], json_ensure_ascii=False,
    )


def configure(settings: Settings, stream: TextIO | None = None) -> None:
    """Send every logger's records to ``stream`` (stderr) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(_Context())
    handler.set_name("vidconv")
    root = logging.getLogger()
    # Replace only a handler of ours (a second call); leave anyone else's (pytest's) alone.
    root.handlers = [h for h in root.handlers if h.get_name() != "vidconv"] + [handler]
    root.setLevel(settings.log_level.upper())
