"""Idempotent writes of a conversion's progress and end into its task row.

Both executors use these: the local one from the transcoder's stdout, the operator from the
ConversionTask's status. Each is safe to repeat (a replayed watch event, a retried write) and
never moves a finished task back: once SUCCESS, FAILURE or REVOKED, a row only changes by deletion.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from vidconv.db.models import Task, TaskState, utcnow

_UNFINISHED = (TaskState.PENDING.value, TaskState.STARTED.value)


def _update_unfinished(
    sessions: sessionmaker[Session], task_id: str, values: Mapping[str, Any]
) -> bool:
    """Apply ``values`` to the task if it is not finished; True when a row changed."""
    with sessions.begin() as session:
        result = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status.in_(_UNFINISHED))
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def record_started(
    sessions: sessionmaker[Session], task_id: str, at: datetime | None = None, attempts: int = 1
) -> bool:
    with sessions.begin() as session:
        task = session.get(Task, task_id, with_for_update=True)
        if task is None or task.status not in _UNFINISHED:
            return False
        if task.status == TaskState.PENDING.value:
            task.status = TaskState.STARTED.value
            task.started_at = at or utcnow()
        task.attempts = max(task.attempts, attempts)
        return True


def record_requeued(sessions: sessionmaker[Session], task_id: str) -> bool:
    """A conversion interrupted by a restart waits again: STARTED -> PENDING, attempts kept."""
    with sessions.begin() as session:
        result = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == TaskState.STARTED.value)
            .values(status=TaskState.PENDING.value, progress=0.0, started_at=None)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def record_progress(sessions: sessionmaker[Session], task_id: str, progress: float) -> bool:
    """Progress only grows (a retried attempt does not make the bar jump back)."""
    progress = max(0.0, min(100.0, float(progress)))
    with sessions.begin() as session:
        result = session.execute(
            update(Task)
            .where(
                Task.id == task_id,
                Task.status.in_(_UNFINISHED),
                Task.progress < progress,
            )
            .values(progress=progress)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


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
        "finished_at": at or utcnow(),
    }
    if input_duration is not None:
        values["input_duration"] = input_duration
    return _update_unfinished(sessions, task_id, values)


def record_failure(
    sessions: sessionmaker[Session],
    task_id: str,
    *,
    error: str,
    code: str = "error",
    at: datetime | None = None,
) -> bool:
    return _update_unfinished(
        sessions,
        task_id,
        {
            "status": TaskState.FAILURE.value,
            "error": error[:2000],
            "error_code": code[:64],
            "finished_at": at or utcnow(),
        },
    )


def record_revoked(sessions: sessionmaker[Session], task_id: str) -> bool:
    return _update_unfinished(
        sessions,
        task_id,
        {"status": TaskState.REVOKED.value, "finished_at": utcnow()},
    )


def record_result(sessions: sessionmaker[Session], task_id: str, result: Mapping[str, Any]) -> bool:
    """Apply the transcoder's result JSON (``{"event": "result", "status": "ok"|"error", ...}``)."""
    if result.get("status") == "ok":
        return record_success(
            sessions,
            task_id,
            output_size=_int_or_none(result.get("size")),
            output_duration=_float_or_none(result.get("duration")),
            input_duration=_float_or_none(result.get("input_duration")),
        )
    return record_failure(
        sessions,
        task_id,
        error=str(result.get("error") or "the conversion failed"),
        code=str(result.get("code") or "error"),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
