"""A finished task's files: its main output alone, or everything under its output prefix when
its format or options make more than one (vidconv.outputs names them)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from vidconv import outputs
from vidconv.api import security
from vidconv.api.services.errors import Conflict, NotFound
from vidconv.api.services.tasks import download_name
from vidconv.db.models import Task
from vidconv.settings import Settings
from vidconv.storage import Storage


def several(task: Task) -> bool:
    """Whether the task's outputs are more than its main file."""
    return outputs.several(task.conversion_type, task.options or {})


@dataclass(frozen=True)
class Links:
    """Signed links to a task's files (vidconv.api.routes.files), all with one signature."""

    task_id: str
    token: str
    expires_at: str

    def url(self, name: str) -> str:
        return f"/api/files/{self.task_id}/{self.token}/{quote(name)}"


def links(settings: Settings, task: Task, now: float | None = None) -> Links:
    expires = int(now if now is not None else time.time()) + settings.signed_url_seconds
    return Links(task.id, security.sign_files(settings, task.id, expires),
                 datetime.fromtimestamp(expires, UTC).isoformat())


def list_files(storage: Storage, task: Task) -> list[outputs.OutputFile]:
    """Main first. One file: from the row alone; several: one listing of the storage."""
    main = download_name(task)
    if not several(task):
        return [outputs.main_file(main, task.output_size, task.conversion_type)]
    return outputs.list_files(storage, task.id, main)


def pick(listed: list[outputs.OutputFile], name: str) -> outputs.OutputFile:
    """The file named ``name``; the main one when ``name`` is empty."""
    for found in listed:
        if found.name == name or (not name and found.role == "main"):
            return found
    if not name:
        raise Conflict("the converted file is missing; convert again")
    raise NotFound(f"the task has no file named {name!r}")


def key(task: Task, found: outputs.OutputFile) -> str:
    return outputs.prefix(task.id) + found.name
