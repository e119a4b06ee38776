"""The migrations and the idempotent task writes, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete as sa_delete
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from vidconv.contract import Result
from vidconv.db import updates
from vidconv.db.models import Task, TaskState, User
from vidconv.db.session import make_engine, make_sessionmaker, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    upgrade(db_url)
    return make_sessionmaker(make_engine(db_url))


def _task(sessions: sessionmaker[Session]) -> str:
    with sessions.begin() as s:
        user = User(username="ana", email="ana@example.com", password_hash="x")
        s.add(user)
        s.flush()
        task = Task(owner_id=user.id, conversion_type="mp4", input_key="in", output_key="out")
        s.add(task)
        s.flush()
        return task.id


def test_migrations_create_tables_and_are_repeatable(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # a second start-up applies nothing and does not fail
    tables = set(inspect(make_engine(db_url)).get_table_names())
    assert {"users", "tasks", "alembic_version"} <= tables


def test_task_goes_pending_started_success_and_stays_finished(
    sessions: sessionmaker[Session],
) -> None:
    task_id = _task(sessions)
    assert updates.record_started(sessions, task_id)
    assert updates.record_progress(sessions, task_id, 40)
    assert not updates.record_progress(sessions, task_id, 10)  # never goes backwards
    assert updates.record_result(sessions, task_id, Result(ok=True, size=1234, duration=2.0))
    # A replayed failure after success changes nothing.
    assert not updates.record_failure(sessions, task_id, error="late", code="x")
    with sessions() as s:
        task = s.get(Task, task_id)
        assert task is not None
        assert task.status == TaskState.SUCCESS
        assert task.progress == 100.0
        assert (task.output_size, task.output_duration, task.error) == (1234, 2.0, None)
        assert task.started_at is not None and task.finished_at is not None


def _row(sessions: sessionmaker[Session], task_id: str) -> Task:
    with sessions() as s:
        task = s.get(Task, task_id)
        assert task is not None
        return task


def test_progress_keeps_fps_and_speed_and_every_change_is_a_new_revision(
    sessions: sessionmaker[Session],
) -> None:
    task_id = _task(sessions)
    assert _row(sessions, task_id).revision == 0
    updates.record_started(sessions, task_id)
    # The transcoder's first report: nothing converted yet, but the input's duration is known.
    assert updates.record_progress(sessions, task_id, 0, input_duration=12.5)
    assert updates.record_progress(sessions, task_id, 30, fps=60.0, speed=2.0)
    assert not updates.record_progress(sessions, task_id, 30, fps=60.0, speed=2.0)  # a replay
    assert updates.record_progress(sessions, task_id, 30, fps=45.0, speed=1.5)  # same %, slower
    assert not updates.record_progress(sessions, task_id, 20, fps=99.0, speed=9.0)  # backwards
    row = _row(sessions, task_id)
    assert (row.progress, row.fps, row.speed, row.input_duration) == (30.0, 45.0, 1.5, 12.5)
    assert row.revision == 4  # started, and three progress writes that changed something
    updates.record_result(sessions, task_id, Result(ok=True, size=1, duration=2.0))
    assert _row(sessions, task_id).revision == 5
    assert not updates.record_progress(sessions, task_id, 100, fps=1.0)  # finished: unchanged
    assert _row(sessions, task_id).revision == 5


def test_failure_result_keeps_the_error_and_code(sessions: sessionmaker[Session]) -> None:
    task_id = _task(sessions)
    updates.record_result(sessions, task_id, Result.failure("invalid_input", "not a video"))
    with sessions() as s:
        task = s.get(Task, task_id)
        assert task is not None
        assert (task.status, task.error, task.error_code) == (
            "FAILURE", "not a video", "invalid_input"
        )


@pytest.mark.postgres
def test_replicas_migrating_at_once_all_succeed(pg_url: str, tmp_path: Path) -> None:
    """Four API replicas start together on a fresh database: none crashes."""
    import subprocess
    import sys
    import time

    go = tmp_path / "go"
    # Each process imports everything first, then waits for the same instant to migrate.
    code = (
        "import sys, time, pathlib; from vidconv.db.session import upgrade\n"
        "import alembic.command, sqlalchemy.dialects.postgresql.psycopg\n"
        "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.001)\n"
        "upgrade(sys.argv[1])"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, pg_url, str(go)], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    time.sleep(3)  # let every process reach the wait loop (not a timing assertion)
    go.touch()
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert {"users", "tasks"} <= set(inspect(make_engine(pg_url)).get_table_names())


def test_a_requeued_task_waits_as_pending_and_keeps_its_attempts(
    sessions: sessionmaker[Session],
) -> None:
    task_id = _task(sessions)
    updates.record_started(sessions, task_id, attempts=1)
    updates.record_progress(sessions, task_id, 55, fps=30.0, speed=1.0)
    assert updates.record_requeued(sessions, task_id)
    with sessions() as s:
        task = s.get(Task, task_id)
        assert task is not None
        assert (task.status, task.progress, task.attempts) == ("PENDING", 0.0, 1)
        assert (task.fps, task.speed) == (None, None)
    updates.record_result(
        sessions, task_id, Result(ok=True, size=1, duration=2.0, input_duration=2.04))
    assert not updates.record_requeued(sessions, task_id)  # a finished task stays finished
    with sessions() as s:
        task = s.get(Task, task_id)
        assert task is not None and task.input_duration == 2.04


def test_a_task_deleted_while_a_worker_writes_is_a_normal_outcome(
    sessions: sessionmaker[Session], db_url: str
) -> None:
    """The user deletes the task just before a worker's write reaches the database: every
    write answers False (nothing matched) and none raises (this was a StaleDataError)."""
    engine = sessions.kw["bind"]
    other = make_engine(db_url)
    doomed: list[str] = []  # armed: the next UPDATE on ``engine`` is preceded by a DELETE

    def delete_first(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if doomed and statement.lstrip().upper().startswith("UPDATE"):
            with other.begin() as conn:  # another connection: the API's DELETE
                conn.execute(sa_delete(Task).where(Task.id == doomed.pop()))

    writes: list[Callable[[str], bool]] = [
        lambda t: updates.record_started(sessions, t, attempts=2),
        lambda t: updates.record_progress(sessions, t, 50),
        lambda t: updates.record_requeued(sessions, t),
        lambda t: updates.record_result(sessions, t, Result(ok=True, size=1)),
        lambda t: updates.record_failure(sessions, t, error="x"),
        lambda t: updates.record_revoked(sessions, t),
    ]
    event.listen(engine, "before_cursor_execute", delete_first)
    try:
        for write in writes:
            task_id = _task(sessions)
            if write is writes[2]:
                updates.record_started(sessions, task_id)  # requeue applies to STARTED only
            doomed.append(task_id)
            assert write(task_id) is False
            assert not doomed  # the DELETE really came in between
            with sessions.begin() as s:
                assert s.get(Task, task_id) is None
                s.execute(sa_delete(User))  # _task makes the same user again
    finally:
        event.remove(engine, "before_cursor_execute", delete_first)
        other.dispose()
