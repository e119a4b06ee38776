"""The start-up backstop: storage keeps no object that no task row references.

Run by the local executor once a restarted server has ended every transcoder an earlier run
left alive, and before it resumes anything (so nothing writes behind the sweep). A server killed
mid-upload, mid-conversion or mid-DELETE may have left an input whose row was never inserted, an
output of a task that ended badly or was deleted, a half-written ``.part`` file, or an upload's
temp file: each goes. What stays: each row's input, and the output of a task that succeeded or
is about to be resumed (it will be written again).
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


def referenced(sessions: sessionmaker[Session]) -> set[str]:
    """The keys the task rows reference, and those of finished uploads not yet made a task."""
    with sessions() as session:
        rows = session.execute(select(Task.input_key, Task.output_key, Task.status))
        wanted = set(session.scalars(select(Upload.storage_key)))
        for input_key, output_key, status in rows:
            wanted.add(input_key)
            if status in _OUTPUT_KEPT:
                wanted.add(output_key)
        return wanted


def sweep_objects(storage: Storage, sessions: sessionmaker[Session]) -> list[str]:
    """Delete the task objects no row references; the keys deleted. Blocking."""
    wanted = referenced(sessions)
    removed = []
    for prefix in (keys.INPUTS, keys.OUTPUTS):
        for key in list(storage.keys(prefix)):
            if key in wanted or keys.task_id_of(key) is None:
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
