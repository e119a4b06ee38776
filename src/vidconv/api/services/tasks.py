"""Task rows: owner-scoped queries and the seed's JSON shapes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from vidconv import storage
from vidconv.api.services.errors import NotFound
from vidconv.api.services.progress import Snapshot
from vidconv.db import outbox
from vidconv.db.models import Task, iso


def insert_task(sessions: sessionmaker[Session], task: Task) -> None:
    with sessions.begin() as session:
        session.add(task)


def list_tasks(
    sessions: sessionmaker[Session], owner: str, limit: int, descending: bool
) -> list[dict[str, Any]]:
    """GET /api/tasks items (the seed's keys); three columns, no ORM objects: it is hot."""
    order = (Task.created_at.desc(), Task.id.desc()) if descending else (
        Task.created_at.asc(), Task.id.asc())
    query = (select(Task.id, Task.conversion_type, Task.status)
             .where(Task.owner_id == owner).order_by(*order).limit(limit))
    with sessions() as session:
        return [{"task_id": i, "conversion_type": c, "status": s}
                for i, c, s in session.execute(query)]


def get_owned(sessions: sessionmaker[Session], owner: str, task_id: str) -> Task:
    """The caller's task; someone else's is NotFound exactly like a missing one."""
    with sessions() as session:
        task = session.get(Task, task_id) if len(task_id) <= 64 else None
    if task is None or task.owner_id != owner:
        raise NotFound("task not found")
    return task


def find_previous_upload(sessions: sessionmaker[Session], owner: str, ref: str) -> Task | None:
    """The caller's task whose input ``ref`` names: its object key, its task id or file name."""
    with sessions() as session:
        query = select(Task).where(Task.owner_id == owner)
        if ref.startswith(storage.INPUTS):
            query = query.where(Task.input_key == ref)
        elif len(ref) == 32 and ref.isalnum():
            query = query.where(Task.id == ref)
        else:
            query = query.where(Task.original_filename == ref)
        return session.scalars(query.order_by(Task.created_at.desc()).limit(1)).first()


def delete_row(sessions: sessionmaker[Session], task_id: str) -> None:
    """The task goes, and with it its delivery log; an event still pending (a running task's
    REVOKED, written as it was stopped) is still sent."""
    with sessions.begin() as session:
        session.execute(delete(Task).where(Task.id == task_id))
        outbox.forget_finished(session, task_id)


def download_name(task: Task) -> str:
    return task.output_key.rsplit("/", 1)[-1]


def detail(task: Task) -> dict[str, Any]:
    """GET /api/tasks/{id}: the seed's state/result plus what a client needs to follow it."""
    live = Snapshot.of(task)
    return {
        "state": live.state,
        "result": live.result,
        "task_id": task.id,
        "conversion_type": task.conversion_type,
        "options": task.options or {},
        "file_name": task.original_filename,
        "progress": round(task.progress, 1),
        "created_at": iso(task.created_at),
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "error": task.error,
        "error_code": task.error_code,
        "error_detail": task.error_detail,
        "attempts": task.attempts,
        "input_size": task.input_size,
        "input_duration": task.input_duration,
        "output_size": task.output_size,
        "output_duration": task.output_duration,
        "callback_url": task.callback_url,
        "fps": live.fps,
        "speed": live.speed,
        "eta_seconds": live.eta_seconds,
    }
