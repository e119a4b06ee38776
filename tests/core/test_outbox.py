"""The webhook outbox on SQLite and a real PostgreSQL: one event per end state whoever writes it,
and one dispatcher at a time per event."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from vidconv.contract import Result
from vidconv.db import outbox, updates
from vidconv.db.models import DeliveryStatus, Task, User, WebhookEvent, utcnow
from vidconv.db.session import make_engine, make_sessionmaker, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> sessionmaker[Session]:
    url = (f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    upgrade(url)
    return make_sessionmaker(make_engine(url))


def _task(sessions: sessionmaker[Session], callback: str | None = "https://example.com/h") -> str:
    with sessions.begin() as s:
        user = User(username="u" + str(time.monotonic_ns()), email=f"{time.monotonic_ns()}@x.io",
                    password_hash="x")
        s.add(user)
        s.flush()
        task = Task(owner_id=user.id, conversion_type="webm", input_key="inputs/t/a.mp4",
                    output_key="outputs/t/a.webm", original_filename="a.mp4",
                    callback_url=callback)
        s.add(task)
        s.flush()
        return task.id


def _events(sessions: sessionmaker[Session], task_id: str) -> list[WebhookEvent]:
    with sessions() as s:
        return list(s.scalars(select(WebhookEvent).where(WebhookEvent.task_id == task_id)))


def test_an_end_state_writes_its_event_once_and_replays_add_none(
    sessions: sessionmaker[Session],
) -> None:
    task_id = _task(sessions)
    updates.record_started(sessions, task_id)
    assert _events(sessions, task_id) == []  # not an end
    assert updates.record_result(sessions, task_id, Result(ok=True, size=1234, duration=2.0))
    assert not updates.record_success(sessions, task_id, output_size=1, output_duration=1.0)
    assert not updates.record_failure(sessions, task_id, error="late")
    assert not updates.record_revoked(sessions, task_id)
    [event] = _events(sessions, task_id)
    assert event.state == "SUCCESS" and event.status == DeliveryStatus.PENDING.value
    assert event.url == "https://example.com/h"
    body = json.loads(event.payload)
    assert body["id"] == event.id and body["type"] == "task.succeeded"
    assert body["data"]["outputs"] == [{"name": "a.webm", "size": 1234, "role": "main",
                                        "type": "video/webm"}]


def test_a_task_without_a_callback_writes_no_event(sessions: sessionmaker[Session]) -> None:
    task_id = _task(sessions, callback=None)
    assert updates.record_failure(sessions, task_id, error="bad", code="bad_input")
    assert _events(sessions, task_id) == []


def test_racing_end_states_write_one_event_for_the_one_that_won(
    sessions: sessionmaker[Session],
) -> None:
    task_ids = [_task(sessions) for _ in range(5)]
    writers: list[Callable[[str], bool]] = [
        lambda t: updates.record_success(sessions, t, output_size=10, output_duration=1.0),
        lambda t: updates.record_failure(sessions, t, error="boom"),
        lambda t: updates.record_revoked(sessions, t),
    ] * 2
    won: dict[str, list[bool]] = {t: [] for t in task_ids}
    start = threading.Barrier(len(writers) * len(task_ids))

    def run(write: Callable[[str], bool], task_id: str) -> None:
        start.wait()
        won[task_id].append(write(task_id))

    threads = [threading.Thread(target=run, args=(w, t)) for t in task_ids for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for task_id in task_ids:
        assert won[task_id].count(True) == 1
        [event] = _events(sessions, task_id)
        with sessions() as s:
            task = s.get(Task, task_id)
            assert task is not None and event.state == task.status


def test_one_dispatcher_at_a_time_holds_an_event_until_its_lease_ends(
    sessions: sessionmaker[Session],
) -> None:
    task_ids = [_task(sessions) for _ in range(6)]
    for task_id in task_ids:
        updates.record_failure(sessions, task_id, error="x")
    got: dict[str, list[str]] = {"a": [], "b": [], "c": []}

    def claim(owner: str) -> None:
        got[owner] = [c.id for c in outbox.claim_due(sessions, owner, 60, 10)]

    threads = [threading.Thread(target=claim, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [e for ids in got.values() for e in ids]
    assert sorted(claimed) == sorted(e.id for t in task_ids for e in _events(sessions, t))
    assert outbox.claim_due(sessions, "d", 60, 10) == []  # all leased

    # An attempt recorded by a dispatcher that lost its lease counts, but changes nothing else.
    event_id = got["a"][0] if got["a"] else claimed[0]
    holder = next(o for o, ids in got.items() if event_id in ids)
    done = outbox.Attempt(utcnow(), 200, 5.0)
    outbox.record_attempt(sessions, event_id, "someone-else", done,
                          outbox.Next(DeliveryStatus.DELIVERED))
    with sessions() as s:
        event = s.get(WebhookEvent, event_id)
        assert event is not None and event.status == "pending" and event.lease_owner == holder
    outbox.record_attempt(sessions, event_id, holder, done, outbox.Next(DeliveryStatus.DELIVERED))
    [delivery] = [d for d in outbox.deliveries(sessions, _task_of(sessions, event_id))]
    assert delivery.event.status == "delivered" and len(delivery.attempts) == 2


def test_an_expired_lease_makes_the_event_due_again(sessions: sessionmaker[Session]) -> None:
    task_id = _task(sessions)
    updates.record_failure(sessions, task_id, error="x")
    [first] = outbox.claim_due(sessions, "dead", 0.3, 10)
    assert outbox.claim_due(sessions, "alive", 60, 10) == []
    time.sleep(0.5)  # the holder died: nothing releases its lease but time
    [again] = outbox.claim_due(sessions, "alive", 60, 10)
    assert again.id == first.id and again.payload == first.payload


def test_a_deleted_task_keeps_its_pending_event_and_drops_finished_ones(
    sessions: sessionmaker[Session],
) -> None:
    from vidconv.api.services.tasks import delete_row

    pending, done = _task(sessions), _task(sessions)
    for task_id in (pending, done):
        updates.record_revoked(sessions, task_id)
    [claimed] = [c for c in outbox.claim_due(sessions, "me", 60, 10) if c.id == _events(
        sessions, done)[0].id]
    outbox.record_attempt(sessions, claimed.id, "me", outbox.Attempt(utcnow(), 204, 1.0),
                          outbox.Next(DeliveryStatus.DELIVERED))
    delete_row(sessions, pending)
    delete_row(sessions, done)
    assert _events(sessions, done) == []
    [left] = _events(sessions, pending)
    # Once sent, nothing lists it any more: it goes too.
    outbox.record_attempt(sessions, left.id, "me", outbox.Attempt(utcnow(), 204, 1.0),
                          outbox.Next(DeliveryStatus.DELIVERED))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def _task_of(sessions: sessionmaker[Session], event_id: str) -> str:
    with sessions() as s:
        event = s.get(WebhookEvent, event_id)
        assert event is not None
        return event.task_id
