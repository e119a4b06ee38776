"""One poll of the task table for all the event streams an API process serves.

The stream of a task follows its row: the embedded workers write progress into it, and in the
Kubernetes mode the operator mirrors the ConversionTask's status into it. Reading the row is what
lets any API replica serve any stream (no sticky sessions, nothing shared but the database).
Rather than one query per stream per tick, ``RowWatch`` polls every followed task's row in one
query (``vidconv.api.services.progress.load_snapshots``) every ``POLL_SECONDS``, and wakes the
streams whose row has a new revision. The loop runs only while something is followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vidconv.api.services.progress import Snapshot, load_snapshots
from vidconv.api.threads import run_in_thread

log = logging.getLogger("vidconv.api")

POLL_SECONDS = 0.25
OUTAGE_MAX_DELAY = 2.0  # the database is down: poll again after at most this


class Follower:
    """One stream's view of its row: ``next()`` waits for a new revision (None: deleted)."""

    def __init__(self, first: Snapshot) -> None:
        self._latest: Snapshot | None = first
        self._changed = asyncio.Event()

    def offer(self, snap: Snapshot | None) -> None:
        latest = self._latest
        if latest is None:
            return
        if snap is None or snap.revision != latest.revision:
            self._latest = snap
            self._changed.set()

    async def next(self) -> Snapshot | None:
        await self._changed.wait()
        self._changed.clear()
        return self._latest


class RowWatch:
    def __init__(self, sessions: sessionmaker[Session], interval: float = POLL_SECONDS) -> None:
        self.sessions, self.interval = sessions, interval
        self._followers: dict[str, set[Follower]] = {}
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def follow(self, first: Snapshot) -> AsyncIterator[Follower]:
        """Follow ``first``'s row from that snapshot on, for as long as the block runs."""
        follower = Follower(first)
        self._followers.setdefault(first.task_id, set()).add(follower)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="vidconv-row-watch")
        try:
            yield follower
        finally:
            followers = self._followers.get(first.task_id, set())
            followers.discard(follower)
            if not followers:
                self._followers.pop(first.task_id, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay, down = self.interval, False
        while self._followers:
            ids = list(self._followers)
            try:
                rows = await run_in_thread(load_snapshots, self.sessions, ids)
            except (OperationalError, InterfaceError) as exc:
                # The streams stay open (heartbeats go on) and catch up once it is back.
                if not down:
                    log.warning("event streams: the database is unavailable (%s); retrying",
                                type(exc.orig or exc).__name__)
                down, delay = True, min(delay * 2, OUTAGE_MAX_DELAY)
                await asyncio.sleep(delay)
                continue
            if down:
                log.info("event streams: the database is back")
            down, delay = False, self.interval
            for task_id in ids:
                for follower in list(self._followers.get(task_id, ())):
                    follower.offer(rows.get(task_id))
            await asyncio.sleep(self.interval)
