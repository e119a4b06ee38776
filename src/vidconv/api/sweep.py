"""The start-up backstop: storage keeps no object that no task row references.

Run by the local executor once a restarted server has ended every transcoder an earlier run
left alive, and before it resumes anything (so nothing writes behind the sweep). A server killed
mid-upload, mid-conversion or mid-DELETE may have left an input whose row was never inserted, an
output of a task that ended badly or was deleted, a half-written ``.part`` file, or an upload's
temp file: each goes. What stays: each row's input, and the output of a task that succeeded or
is about to be resumed (it will be written again): its whole output folder, since pictures
and an adaptive stream's renditions sit beside the main output (vidconv.outputs).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vidconv import storage as keys
from vidconv.db.models import Task, TaskState, Upload
from vidconv.storage import ObjectNotFound, Storage

log = logging.getLogger("vidconv.executor")

_OUTPUT_KEPT = (TaskState.SUCCESS.value, TaskState.PENDING.value, TaskState.STARTED.value)


def referenced(sessions: sessionmaker[Session]) -> tuple[set[str], set[str]]:
    """The keys the task rows reference (and those of finished uploads not yet made a task),
    and the tasks whose output folder is kept."""
    with sessions() as session:
        rows = session.execute(select(Task.id, Task.input_key, Task.status))
        wanted = set(session.scalars(select(Upload.storage_key)))
        folders = set()
        for task_id, input_key, status in rows:
            wanted.add(input_key)
            if status in _OUTPUT_KEPT:
                folders.add(task_id)
        return wanted, folders


def _kept(key: str, wanted: set[str], folders: set[str]) -> bool:
    if key in wanted:
        return True
    return (key.startswith(keys.OUTPUTS) and keys.task_id_of(key) in folders
            and not key.endswith(".part"))


def sweep_objects(storage: Storage, sessions: sessionmaker[Session]) -> list[str]:
    """Delete the task objects no row references; the keys deleted. Blocking."""
    wanted, folders = referenced(sessions)
    removed = []
    for prefix in (keys.INPUTS, keys.OUTPUTS):
        for key in list(storage.keys(prefix)):
            if _kept(key, wanted, folders) or keys.task_id_of(key) is None:
                continue
            try:
                storage.delete(key)
            except ObjectNotFound:
                pass
            removed.append(key)
    if removed:
        log.info("removed %d stored object(s) no task references: %s", len(removed),
                 ", ".join(removed[:10]) + (", ..." if len(removed) > 10 else ""))
    return removed


def sweep_temp_files(upload_dir: Path) -> None:
    """Upload and download temp files of requests that a killed server never finished."""
    if upload_dir.is_dir():
        for path in upload_dir.iterdir():
            if path.is_file():
                path.unlink(missing_ok=True)
