"""What the event stream tells a client, given what it was told before (pure, table-driven)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from vidconv.api.openapi import EVENT_ID_PATTERN
from vidconv.api.services.progress import Cursor, Snapshot, events, gone


def _snap(state: str = "STARTED", revision: int = 3, progress: float = 40.0,
          **kw: object) -> Snapshot:
    base = Snapshot("t1", state, progress, 50.0, 2.0, 20.0, {}, revision, None, None, None)
    return replace(base, **kw)  # type: ignore[arg-type]


def _told(cursor: Cursor, snap: Snapshot) -> list[tuple[str, str]]:
    return [(e.name, e.cursor.id) for e in events(cursor, snap)[0]]


@pytest.mark.parametrize(("cursor", "snap", "told"), [
    # A new client of a running task: its state, then its progress.
    (Cursor(), _snap(), [("state", "-1-STARTED"), ("progress", "3-STARTED")]),
    # Resumed after the state only: the progress, not the state again.
    (Cursor(-1, "STARTED"), _snap(), [("progress", "3-STARTED")]),
    # Resumed with nothing new: nothing.
    (Cursor(3, "STARTED"), _snap(), []),
    # A waiting task: its state, no progress.
    (Cursor(), _snap("PENDING", 0, 0.0), [("state", "0-PENDING")]),
    # The end: the bar at 100 first (still STARTED as far as the client knows), then SUCCESS.
    (Cursor(3, "STARTED"), _snap("SUCCESS", 5, 100.0),
     [("progress", "5-STARTED"), ("state", "5-SUCCESS")]),
    # A new client of a finished task: the same two; the first says no state was told yet.
    (Cursor(), _snap("SUCCESS", 5, 100.0), [("progress", "5-NONE"), ("state", "5-SUCCESS")]),
    # Resumed between those two: only the end.
    (Cursor(5, "STARTED"), _snap("SUCCESS", 5, 100.0), [("state", "5-SUCCESS")]),
    # A failure has no last progress to tell.
    (Cursor(3, "STARTED"), _snap("FAILURE", 4), [("state", "4-FAILURE")]),
    # Requeued after a restart: waiting again.
    (Cursor(3, "STARTED"), _snap("PENDING", 4, 0.0), [("state", "4-PENDING")]),
])
def test_each_event_is_told_once_and_its_id_says_what_the_client_knows(
    cursor: Cursor, snap: Snapshot, told: list[tuple[str, str]]
) -> None:
    assert _told(cursor, snap) == told
    assert all(re.match(EVENT_ID_PATTERN, event_id) for _, event_id in told)  # as documented
    # A client that reconnects with the last id it got is told nothing more.
    if told:
        last = Cursor.parse(told[-1][1])
        assert last is not None and _told(last, snap) == []


def test_the_eta_is_what_is_left_of_the_trimmed_input_at_the_reported_speed() -> None:
    assert _snap(progress=40.0).eta_seconds == 6.0  # 60 % of 20 s at 2x
    trimmed = _snap(progress=50.0, options={"start": 5, "duration": 10})
    assert trimmed.eta_seconds == 2.5  # 50 % of 10 s at 2x
    assert _snap(speed=None).eta_seconds is None
    assert _snap(input_duration=None).eta_seconds is None
    assert _snap("PENDING").eta_seconds is None
    assert _snap("SUCCESS", progress=100.0).eta_seconds == 0.0


def test_ids_not_of_ours_start_afresh_and_a_deleted_task_is_revoked() -> None:
    for text in (None, "", "7", "x-STARTED", "3-BOGUS", "3-STARTED\n4-SUCCESS", "9" * 30 + "-X",
                 "-2-STARTED"):
        assert Cursor.parse(text) is None
    assert Cursor.parse(" 12-SUCCESS ") == Cursor(12, "SUCCESS")
    assert Cursor.parse("-1-PENDING") == Cursor(-1, "PENDING")
    assert Cursor.parse("5-NONE") == Cursor(5, "")
    end = gone(_snap())
    assert (end.state, end.result, end.finished) == ("REVOKED", "deleted", True)
    assert _told(Cursor(3, "STARTED"), end) == [("state", "4-REVOKED")]
