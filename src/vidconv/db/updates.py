"""Idempotent writes of a conversion's progress and end into its task row.

Both executors use these: the local one from the transcoder's stdout, the operator from the
ConversionTask's status. Each is safe to repeat (a replayed watch event, a retried write) and
never moves a finished task back: once SUCCESS, FAILURE or REVOKED, a row only changes by deletion.
Each is a single UPDATE whose WHERE clause holds its conditions, so a row deleted meanwhile (the
user deleted the task while a worker reports on it) is a normal outcome: the write returns False.
An end state (SUCCESS, FAILURE, REVOKED) also writes the task's webhook event into the outbox
(``vidconv.db.outbox``), in the same transaction.
Every write that changes a row adds one to its ``revision``: readers that poll the row (the API's
event stream, on any replica) see that something changed, and it numbers the stream's events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, or_, update
from sqlalchemy.orm import Session, sessionmaker

from vidconv.contract import Result
from vidconv.db import outbox
from vidconv.db.models import Task, TaskState, utcnow

_UNFINISHED = (TaskState.PENDING.value, TaskState.STARTED.value)
MAX_DETAIL = 4000  # the end of what ffmpeg said is where its reason is


def _finish(sessions: sessionmaker[Session], task_id: str, values: Mapping[str, Any]) -> bool:
    """Write an end state if the task is not finished; True when a row changed.

    The task's webhook event (if it has a callback) is written in the same transaction: only
    the one write that finishes the row inserts it, however many writers race or retry.
    """
    with sessions.begin() as session:
        result = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status.in_(_UNFINISHED))
            .values(**values, revision=Task.revision + 1)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        outbox.enqueue(session, task_id)
        return True


def record_started(
    sessions: sessionmaker[Session], task_id: str, at: datetime | None = None, attempts: int = 1
) -> bool:
    """PENDING -> STARTED (a STARTED task only counts the attempt); False if finished or gone.

    One UPDATE with the conditions in its WHERE clause, never read-modify-write through the
    ORM: a task deleted between the read and the write (a DELETE right after a POST) is then
    just "no row matched", not a StaleDataError.
    """
    with sessions.begin() as session:
        result = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status.in_(_UNFINISHED))
            .values(
                status=TaskState.STARTED.value,
                started_at=case(
                    (Task.status == TaskState.PENDING.value, at or utcnow()),
                    else_=Task.started_at,
                ),
                attempts=case((Task.attempts < attempts, attempts), else_=Task.attempts),
                revision=Task.revision + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def record_requeued(sessions: sessionmaker[Session], task_id: str) -> bool:
    """A conversion interrupted by a restart waits again: STARTED -> PENDING, attempts kept."""
    with sessions.begin() as session:
        result = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == TaskState.STARTED.value)
            .values(status=TaskState.PENDING.value, progress=0.0, fps=None, speed=None,
                    started_at=None, revision=Task.revision + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def record_progress(
    sessions: sessionmaker[Session], task_id: str, progress: float, *,
    fps: float | None = None, speed: float | None = None, input_duration: float | None = None,
) -> bool:
    """Progress only grows (a retried attempt does not make the bar jump back); at the same
    progress a new fps or speed is still recorded. ``input_duration`` (once probed) fills the
    row's when given. A replay of the same values changes nothing (no new revision)."""
    progress = max(0.0, min(100.0, float(progress)))
    values: dict[str, Any] = {"fps": _rate(fps), "speed": _rate(speed)}
    if _rate(input_duration) is not None:
        values["input_duration"] = _rate(input_duration)
    news = [getattr(Task, k).is_distinct_from(v) for k, v in values.items()]
    with sessions.begin() as session:
        result = session.execute(
            update(Task)
            .where(
                Task.id == task_id,
                Task.status.in_(_UNFINISHED),
                or_(Task.progress < progress, and_(Task.progress == progress, or_(*news))),
            )
            .values(**values, progress=progress, revision=Task.revision + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _rate(value: float | None) -> float | None:
    return None if value is None or not value >= 0 or value == float("inf") else float(value)


def record_success(
    sessions: sessionmaker[Session],
    task_id: str,
    *,
    output_size: int | None,
    output_duration: float | None,
    input_duration: float | None = None,
    at: datetime | None = None,
) -> bool:
    values: dict[str, Any] = {
        "status": TaskState.SUCCESS.value,
        "progress": 100.0,
        "output_size": output_size,
        "output_duration": output_duration,
        "error": None,
        "error_code": None,
        "error_detail": None,
        "finished_at": at or utcnow(),
    }
    if input_duration is not None:
        values["input_duration"] = input_duration
    return _finish(sessions, task_id, values)


def record_failure(
    sessions: sessionmaker[Session],
    task_id: str,
    *,
    error: str,
    code: str = "error",
    detail: str | None = None,
    at: datetime | None = None,
) -> bool:
    return _finish(
        sessions,
        task_id,
        {
            "status": TaskState.FAILURE.value,
            "error": error[:2000],
            "error_code": code[:64],
            "error_detail": detail[-MAX_DETAIL:] if detail else None,
            "finished_at": at or utcnow(),
        },
    )


def record_revoked(sessions: sessionmaker[Session], task_id: str) -> bool:
    return _finish(
        sessions,
        task_id,
        {"status": TaskState.REVOKED.value, "finished_at": utcnow()},
    )


def record_result(sessions: sessionmaker[Session], task_id: str, result: Result) -> bool:
    """Apply the transcoder's result (``vidconv.contract.Result``) as the task's end."""
    if result.ok:
        return record_success(
            sessions,
            task_id,
            output_size=result.size,
            output_duration=result.duration,
            input_duration=result.input_duration,
        )
    return record_failure(
        sessions,
        task_id,
        error=result.error or "the conversion failed",
        code=result.code or "error",
        detail=result.detail,
    )
