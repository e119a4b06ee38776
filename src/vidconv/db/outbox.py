"""The webhook outbox: one event row per end state of a task that has a callback URL.

``enqueue`` runs inside the transaction that writes the end state (``vidconv.db.updates``), so
the event exists if and only if the end state does, whichever process wrote it (the local
executor, the operator, an API cancelling a task). Those writes only ever change an unfinished
row, so exactly one of any number of racing or retried writers inserts it; the unique key
(task_id, state) states that invariant in the schema.

Dispatchers (``vidconv.api.webhooks``, in every API process) take due rows with a lease: one
conditional UPDATE per row, which only one of several processes can win, on SQLite and
PostgreSQL alike. The lease is held while a delivery is in flight; if its process dies, the
row is due again once the lease has run out.

The event's body is fixed when the row is written: retries and redeliveries send the very same
bytes (the same ``id``), only the signature's timestamp changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import ColumnElement, delete, exists, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from vidconv.db.models import (
    DeliveryStatus,
    Task,
    TaskState,
    WebhookAttempt,
    WebhookEvent,
    iso,
    new_id,
    utcnow,
)
from vidconv.outputs import OutputFile, main_file, several

EventType = Literal["task.succeeded", "task.failed", "task.revoked"]
EndState = Literal["SUCCESS", "FAILURE", "REVOKED"]
EVENT_TYPES: dict[TaskState, EventType] = {
    TaskState.SUCCESS: "task.succeeded",
    TaskState.FAILURE: "task.failed",
    TaskState.REVOKED: "task.revoked",
}
MAX_ERROR = 500


@dataclass(frozen=True)
class TaskAtEnd:
    """The task as it ended, in the field names of ``GET /api/tasks/{id}``."""

    task_id: str
    state: EndState
    conversion_type: str
    file_name: str
    outputs: list[OutputFile]
    error_code: str | None
    error: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class TaskEvent:
    """The body of every webhook request: ``type`` says which end, ``data`` is the task."""

    id: str
    type: EventType
    created_at: str
    data: TaskAtEnd


def outputs_of(task: Task) -> list[OutputFile]:
    """The task's files as its row knows them: its main output, when it succeeded. A task that
    leaves more (pictures, a stream) has none here: the dispatcher lists them from the storage
    into the event before it is first sent (``complete``)."""
    if task.status != TaskState.SUCCESS.value or several(task.conversion_type, task.options or {}):
        return []
    return [main_file(task.output_key.rsplit("/", 1)[-1], task.output_size,
                      task.conversion_type)]


def with_outputs(payload: str, files: list[OutputFile]) -> str:
    """The event's body with ``files`` as its outputs."""
    event = json.loads(payload)
    event["data"]["outputs"] = [asdict(f) for f in files]
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def build_event(task: Task, event_id: str, at: datetime) -> TaskEvent:
    state = TaskState(task.status)
    return TaskEvent(
        id=event_id,
        type=EVENT_TYPES[state],
        created_at=iso(at) or "",
        data=TaskAtEnd(
            task_id=task.id, state=cast(EndState, state.value),
            conversion_type=task.conversion_type, file_name=task.original_filename,
            outputs=outputs_of(task),
            error_code=task.error_code, error=task.error, created_at=iso(task.created_at),
            started_at=iso(task.started_at), finished_at=iso(task.finished_at),
        ),
    )


def encode(event: TaskEvent) -> str:
    return json.dumps(asdict(event), ensure_ascii=False, separators=(",", ":"))


def enqueue(session: Session, task_id: str) -> str | None:
    """In the end state's transaction: the task's event, if it has a callback; its id."""
    task = session.execute(select(Task).where(Task.id == task_id)).scalar_one_or_none()
    if task is None or not task.callback_url:
        return None
    now, event_id = utcnow(), new_id()
    session.add(WebhookEvent(
        id=event_id, task_id=task.id, owner_id=task.owner_id, state=task.status,
        url=task.callback_url, payload=encode(build_event(task, event_id, now)),
        status=DeliveryStatus.PENDING.value, attempts=0, created_at=now, next_attempt_at=now,
        retry_from=now,
    ))
    return event_id


# -- dispatchers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A due event this dispatcher holds the lease of."""

    id: str
    task_id: str
    state: str
    owner_id: str
    url: str
    payload: str
    attempts: int
    retry_from: datetime
    lease: str  # the token it is held under; the attempt is recorded with it


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [WebhookEvent.status == DeliveryStatus.PENDING.value,
            WebhookEvent.next_attempt_at <= now,
            or_(WebhookEvent.lease_until.is_(None), WebhookEvent.lease_until < now)]


def claim_due(
    sessions: sessionmaker[Session], lease: str, lease_seconds: float, limit: int
) -> list[Claimed]:
    """Lease up to ``limit`` due events under ``lease`` (a token new for each call); another
    process never gets the same ones."""
    now = utcnow()
    with sessions.begin() as session:
        ids = select(WebhookEvent.id).where(*_due(now)).order_by(
            WebhookEvent.next_attempt_at).limit(limit).scalar_subquery()
        # The conditions again, in the UPDATE itself: PostgreSQL re-checks them on a row another
        # transaction just changed (that one then stays out), SQLite runs one writer at a time.
        session.execute(
            update(WebhookEvent).where(WebhookEvent.id.in_(ids), *_due(now))
            .values(lease_owner=lease, lease_until=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False))
        won = session.scalars(select(WebhookEvent).where(WebhookEvent.lease_owner == lease))
        return [Claimed(e.id, e.task_id, e.state, e.owner_id, e.url, e.payload, e.attempts,
                        e.retry_from, lease) for e in won]


@dataclass(frozen=True)
class Attempt:
    """What one try at a delivery gave."""

    at: datetime
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Next:
    """What becomes of the event after an attempt: its status, and when to try again."""

    status: DeliveryStatus
    at: datetime | None = None


def record_attempt(
    sessions: sessionmaker[Session], event_id: str, lease: str, attempt: Attempt, after: Next
) -> None:
    """Log the attempt and release the lease. An attempt always counts; the event's status
    only changes while ``lease`` still holds it."""
    with sessions.begin() as session:
        if session.get(WebhookEvent, event_id) is None:
            return  # its owner is gone (the user was deleted)
        session.add(WebhookAttempt(
            event_id=event_id, attempted_at=attempt.at, status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            error=attempt.error[:MAX_ERROR] if attempt.error else None))
        values: dict[str, object] = {
            "attempts": WebhookEvent.attempts + 1, "status": after.status.value,
            "lease_owner": None, "lease_until": None,
        }
        if after.at is not None:
            values["next_attempt_at"] = after.at
        if after.status is DeliveryStatus.DELIVERED:
            values["delivered_at"] = attempt.at
        session.execute(update(WebhookEvent)
                        .where(WebhookEvent.id == event_id, WebhookEvent.lease_owner == lease)
                        .values(**values))
        if after.status is not DeliveryStatus.PENDING:
            # Done with an event of a task deleted meanwhile: nothing will list it any more.
            session.execute(delete(WebhookEvent).where(
                WebhookEvent.id == event_id,
                ~exists(select(Task.id).where(Task.id == WebhookEvent.task_id))))


def complete(sessions: sessionmaker[Session], event_id: str, lease: str, payload: str) -> bool:
    """Store the event's completed body (before its first send); False if the lease is lost."""
    with sessions.begin() as session:
        return bool(session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id, WebhookEvent.lease_owner == lease)
            .values(payload=payload)).rowcount)  # type: ignore[attr-defined]


# -- what the owner sees and does ----------------------------------------------------------------


@dataclass
class Delivery:
    """An event of a task and every attempt at sending it, oldest first."""

    event: WebhookEvent
    attempts: list[WebhookAttempt] = field(default_factory=list)


def deliveries(sessions: sessionmaker[Session], task_id: str) -> list[Delivery]:
    with sessions() as session:
        events = list(session.scalars(select(WebhookEvent)
                                      .where(WebhookEvent.task_id == task_id)
                                      .order_by(WebhookEvent.created_at)))
        found = {e.id: Delivery(e) for e in events}
        if found:
            for attempt in session.scalars(
                    select(WebhookAttempt).where(WebhookAttempt.event_id.in_(found))
                    .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)):
                found[attempt.event_id].attempts.append(attempt)
        return list(found.values())


def redeliver(sessions: sessionmaker[Session], task_id: str) -> WebhookEvent | None:
    """Send the task's event again now, with a fresh retry window; None if it has none."""
    now = utcnow()
    with sessions.begin() as session:
        event = session.scalars(select(WebhookEvent).where(WebhookEvent.task_id == task_id)
                                .order_by(WebhookEvent.created_at.desc()).limit(1)).first()
        if event is None:
            return None
        event.status = DeliveryStatus.PENDING.value
        event.next_attempt_at = now
        event.retry_from = now
        return event


def forget_finished(session: Session, task_id: str) -> None:
    """With a deleted task: its delivered and failed events go; pending ones are still sent."""
    session.execute(delete(WebhookEvent).where(
        WebhookEvent.task_id == task_id,
        WebhookEvent.status != DeliveryStatus.PENDING.value))
