"""A task's live progress as Server-Sent Events: what a row says, and what to tell a client.

Everything here is pure: a ``Snapshot`` of the task row (the columns the event stream needs), a
``Cursor`` (what a client has been told: the revision whose progress it has, and the state),
and ``events``, which turns a new snapshot into the events a client with that cursor still
lacks. Each event carries the cursor as its SSE ``id``, so a client that reconnects with
``Last-Event-ID`` gets what changed since, and nothing it has seen again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vidconv import formats
from vidconv.db.models import Task, TaskState

PROGRESS, STATE = "progress", "state"
# What a row's columns are read for (load_snapshots selects exactly these).
COLUMNS = (Task.id, Task.status, Task.progress, Task.fps, Task.speed, Task.input_duration,
           Task.options, Task.revision, Task.output_key, Task.error, Task.error_code)
_NO_STATE = "NONE"  # in an id: no state told yet (a finished task's last progress came first)
_ID = re.compile(r"^(-1|\d{1,18})-([A-Z]{1,16})$")  # -1: no progress told yet
_WITH_PROGRESS = (TaskState.STARTED.value, TaskState.SUCCESS.value)


def result_text(state: str, output_key: str, error: str | None) -> str | None:
    """The seed's ``result``: the output file's name, the error, or "cancelled"."""
    if state == TaskState.SUCCESS.value:
        return output_key.rsplit("/", 1)[-1]
    if state == TaskState.FAILURE.value:
        return error
    if state == TaskState.REVOKED.value:
        return "cancelled"
    return None


@dataclass(frozen=True)
class Snapshot:
    """The row as the stream sees it (``None`` where a loader found no row: deleted)."""

    task_id: str
    state: str
    progress: float
    fps: float | None
    speed: float | None
    input_duration: float | None
    options: Mapping[str, Any]
    revision: int
    result: str | None
    error: str | None
    error_code: str | None

    @classmethod
    def of(cls, row: Any) -> Snapshot:
        """From a Task, or a row of ``COLUMNS``."""
        return cls(row.id, row.status, float(row.progress or 0.0), row.fps, row.speed,
                   row.input_duration, row.options or {}, int(row.revision or 0),
                   result_text(row.status, row.output_key, row.error), row.error,
                   row.error_code)

    @property
    def finished(self) -> bool:
        return TaskState(self.state).finished

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left: what remains of the input to convert (trim included), at the speed
        the transcoder last reported; None while either is unknown."""
        if self.state == TaskState.SUCCESS.value:
            return 0.0
        if self.state != TaskState.STARTED.value or not self.speed or self.speed <= 0:
            return None
        total = formats.expected_duration(self.input_duration, self.options)
        if total is None:
            return None
        return round(max(0.0, total * (1 - self.progress / 100)) / self.speed, 1)

    def progress_data(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "progress": round(self.progress, 1), "fps": self.fps,
                "speed": self.speed, "eta_seconds": self.eta_seconds}

    def state_data(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "state": self.state, "progress": round(self.progress, 1),
                "result": self.result, "error": self.error, "error_code": self.error_code}


def gone(last: Snapshot) -> Snapshot:
    """What the stream tells when the row disappears (the task was deleted): cancelled."""
    return Snapshot(last.task_id, TaskState.REVOKED.value, last.progress, None, None,
                    last.input_duration, last.options, last.revision + 1, "deleted", None, None)


@dataclass(frozen=True)
class Cursor:
    """What a client has been told: the progress of ``revision``, and ``state``."""

    revision: int = -1
    state: str = ""

    @property
    def id(self) -> str:
        return f"{self.revision}-{self.state or _NO_STATE}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """A Last-Event-ID of ours; None for anything else (the stream starts afresh)."""
        match = _ID.match((text or "").strip())
        if match is None:
            return None
        revision, state = int(match.group(1)), match.group(2)
        if state == _NO_STATE:
            return cls(revision)
        return cls(revision, state) if state in TaskState.__members__ else None

    def saw_the_end(self, snap: Snapshot) -> bool:
        return snap.finished and self.state == snap.state


@dataclass(frozen=True)
class Event:
    name: str
    cursor: Cursor
    data: dict[str, Any]


def events(cursor: Cursor, snap: Snapshot) -> tuple[list[Event], Cursor]:
    """The events a client at ``cursor`` lacks to know ``snap``, and its cursor after them.

    A finished task's last progress (the bar at 100) comes before the state that ends the
    stream; otherwise a new state comes first, then the progress of that revision. Each event's
    id is the cursor *after* it, so a reconnect between the two repeats neither.
    """
    out: list[Event] = []
    revision, state = cursor.revision, cursor.state
    progress_due = snap.revision != revision and snap.state in _WITH_PROGRESS
    if progress_due and snap.finished:
        revision = snap.revision
        out.append(Event(PROGRESS, Cursor(revision, state), snap.progress_data()))
    if snap.state != state:
        state = snap.state
        if not progress_due:
            revision = snap.revision  # nothing else to tell of this revision
        out.append(Event(STATE, Cursor(revision, state), snap.state_data()))
    if progress_due and not snap.finished:
        revision = snap.revision
        out.append(Event(PROGRESS, Cursor(revision, state), snap.progress_data()))
    return out, Cursor(snap.revision, snap.state)


def load_snapshots(sessions: sessionmaker[Session], task_ids: list[str]) -> dict[str, Snapshot]:
    """The rows of ``task_ids`` that exist, in one query per 500 ids."""
    found: dict[str, Snapshot] = {}
    with sessions() as session:
        for i in range(0, len(task_ids), 500):
            query = select(*COLUMNS).where(Task.id.in_(task_ids[i:i + 500]))
            for row in session.execute(query):
                found[row.id] = Snapshot.of(row)
    return found
