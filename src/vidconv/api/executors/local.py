"""The embedded executor: a bounded pool of ``python -m vidconv.transcoder`` subprocesses.

Each worker takes a task id from the queue, runs exactly the command a Kubernetes Job's
container runs (``vidconv.contract``), copies the progress lines into the row (throttled) and
the result line into the row's end state, all through ``vidconv.db.updates``. Cancelling sends
SIGTERM to the transcoder's process group: the transcoder stops its ffmpeg (which runs in a
session of its own and dies with its parent) and empties its scratch; SIGKILL follows after a
grace period.

No conversion outlives the server: the transcoder gets ``VIDCONV_PARENT_PID`` and ends itself
when this process is gone, even after a SIGKILL (``vidconv.transcoder.lifeline``). Each running
transcoder holds a lease (a pid file under the data dir, ``leases``); a restarted server ends
whatever an earlier run's leases name that is still alive, sweeps the objects no row
references (``vidconv.api.sweep``), and only then resumes the unfinished tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vidconv import contract, logs, outputs
from vidconv.api import sweep
from vidconv.api.executors.leases import Leases
from vidconv.api.threads import run_in_thread
from vidconv.contract import Progress, Result
from vidconv.db import updates
from vidconv.db.models import Task, TaskState
from vidconv.metrics import PREFIX, ConversionMetrics
from vidconv.settings import Settings
from vidconv.storage import Storage, StorageError

log = logging.getLogger("vidconv.executor")
T = TypeVar("T")

MAX_ATTEMPTS = 2  # a retryable failure (exit 1) or a restart mid-conversion gets one more try
GRACE_SECONDS = 5.0  # SIGTERM, then SIGKILL after this
PROGRESS_INTERVAL = 0.5  # seconds between progress writes
STDERR_TAIL = 4000
# A database outage shorter than this loses no conversion's end state: row writes are retried.
DB_RETRY_SECONDS = 30.0
DB_RETRY_MAX_DELAY = 2.0


def transcoder_env(settings: Settings, task_id: str) -> dict[str, str]:
    """The contract's environment, with this server as the parent the transcoder lives by."""
    return contract.transcoder_env(settings, inherit=os.environ, extra={
        contract.PARENT_PID: str(os.getpid()), contract.TASK_ID: task_id})


def transcoder_command(storage: Storage, task: Task) -> list[str]:
    return contract.transcoder_command(
        sys.executable, storage.locator(task.input_key), storage.locator(task.output_key),
        task.conversion_type, task.options or {},
    )


class LocalExecutor:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], storage: Storage,
        registry: CollectorRegistry,
    ) -> None:
        self.settings, self.sessions, self.storage = settings, sessions, storage
        self.leases = Leases(settings.data_dir / "run")
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.subprocess.Process] = {}
        self._queued: set[str] = set()
        # Tasks a worker has taken, until it is done with them (no more writes of its own).
        self._active: dict[str, asyncio.Event] = {}
        self._cancelled: set[str] = set()
        self._stopping = False
        self.metrics = ConversionMetrics.register(registry)
        Gauge(f"{PREFIX}_queued_conversions", "Tasks waiting for a worker (embedded mode)",
              registry=registry).set_function(lambda: self._queue.qsize())
        Gauge(f"{PREFIX}_running_conversions", "Transcoders running now (embedded mode)",
              registry=registry).set_function(lambda: len(self._running))
        Gauge(f"{PREFIX}_workers", "Conversions this server runs at once (embedded mode)",
              registry=registry).set(max(1, settings.workers))

    async def start(self) -> None:
        self._queue = asyncio.Queue()  # bound to the loop that runs the app
        self._stopping = False
        # Before anything is resumed: no transcoder of an earlier run is still alive, and
        # storage holds nothing that no row references.
        await run_in_thread(self.leases.reap)
        resumed = await run_in_thread(self._recover)
        await run_in_thread(self._sweep)
        self._workers = [
            asyncio.create_task(self._worker(), name=f"vidconv-worker-{i}")
            for i in range(max(1, self.settings.workers))
        ]
        for task_id in resumed:
            await self.submit(task_id)

    def _sweep(self) -> None:
        try:
            sweep.sweep_objects(self.storage, self.sessions)
        except StorageError as exc:  # storage down at start: /readyz says so; next start
            log.warning("could not sweep the storage for unreferenced objects: %s", exc)
        sweep.sweep_temp_files(self.settings.data_dir / "tmp")  # the API's upload temp dir

    def _recover(self) -> list[str]:
        """Tasks a previous run left unfinished: queue them again, or fail them clearly."""
        unfinished = (TaskState.PENDING.value, TaskState.STARTED.value)
        with self.sessions() as session:
            rows = list(session.execute(
                select(Task.id, Task.status, Task.attempts)
                .where(Task.status.in_(unfinished)).order_by(Task.created_at)
            ))
        again = []
        for task_id, status, attempts in rows:
            if status == TaskState.STARTED.value and attempts >= MAX_ATTEMPTS:
                updates.record_failure(
                    self.sessions, task_id, code="interrupted",
                    error=f"the server stopped during the conversion {attempts} times; "
                          "giving up (submit it again)",
                )
            else:
                updates.record_requeued(self.sessions, task_id)  # shows PENDING while it waits
                again.append(task_id)
        if again:
            log.info("resuming %d unfinished task(s)", len(again))
        return again

    async def submit(self, task_id: str) -> None:
        self._queued.add(task_id)
        self._queue.put_nowait(task_id)

    async def cancel(self, task_id: str) -> None:
        self._cancelled.add(task_id)  # before any await: a worker about to spawn sees it
        try:
            await run_in_thread(updates.record_revoked, self.sessions, task_id)
        except BaseException:
            # Database down (the DELETE answers 503): the conversion goes on and records its
            # result as usual instead of ending unrecorded; a retried DELETE cancels it.
            self._cancelled.discard(task_id)
            raise
        proc = self._running.get(task_id)
        if proc is not None:
            await self._terminate(proc)
        done = self._active.get(task_id)
        if done is not None:
            # A worker has the task (maybe just starting its transcoder, which it then stops
            # at once): wait until it is done, so nothing of it runs or writes after this.
            await done.wait()
        elif task_id not in self._queued:
            self._cancelled.discard(task_id)  # nothing will come by to clear it

    async def stop(self) -> None:
        # Running conversions stay STARTED in the database: the next start() resumes them.
        self._stopping = True
        await asyncio.gather(*(self._terminate(p) for p in list(self._running.values())))
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(GRACE_SECONDS):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _worker(self) -> None:
        # asyncio.timeout, never wait_for: on Python 3.11 wait_for swallows a cancel that comes
        # as its awaitable finishes (a transcoder ending as stop() cancels its worker), and the
        # worker would wait on the queue for ever; the _stopping check is the backstop.
        while not self._stopping:
            task_id = await self._queue.get()
            self._queued.discard(task_id)
            logs.bind_task(task_id)
            done = self._active[task_id] = asyncio.Event()
            try:
                await self._run(task_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # a worker must outlive any one task
                log.exception("task %s: executor error", task_id)
                try:
                    await self._db(
                        updates.record_failure, self.sessions, task_id,
                        error="internal error while running the conversion", code="internal",
                    )
                except Exception:  # the database stayed down: the next start() resumes it
                    log.exception("task %s: could not record the failure", task_id)
            finally:
                self._cancelled.discard(task_id)
                self._active.pop(task_id, None)
                done.set()
                logs.bind_task(None)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking row read/write, retried with backoff while the database is down.

        Gives up (raises) after DB_RETRY_SECONDS; the writes in db/updates.py are idempotent,
        so a retry after a write whose commit reply was lost is harmless.
        """
        deadline = time.monotonic() + DB_RETRY_SECONDS
        delay = 0.1
        while True:
            try:
                return await run_in_thread(fn, *args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("database unavailable (%s), retrying %s in %.1f s",
                            type(exc.orig or exc).__name__, fn.__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, DB_RETRY_MAX_DELAY)

    def _load(self, task_id: str) -> Task | None:
        with self.sessions() as session:
            return session.get(Task, task_id)

    async def _run(self, task_id: str) -> None:
        task = await self._db(self._load, task_id)
        if task is None or TaskState(task.status).finished or task_id in self._cancelled:
            return
        attempt = task.attempts
        began = time.monotonic()  # the conversion's duration counts every attempt
        while attempt < MAX_ATTEMPTS and not self._stopping:
            attempt += 1
            if not await self._db(
                updates.record_started, self.sessions, task_id, attempts=attempt
            ):
                return  # revoked or deleted meanwhile
            outcome = await self._run_once(task, began, last=attempt >= MAX_ATTEMPTS)
            if outcome != "retry":
                return
            log.info("task %s: retryable failure, attempt %d of %d", task_id, attempt,
                     MAX_ATTEMPTS)

    async def _run_once(self, task: Task, began: float, last: bool) -> str:
        """One transcoder run; returns "done", "retry" or "stopped"."""
        proc = await asyncio.create_subprocess_exec(
            *transcoder_command(self.storage, task),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=transcoder_env(self.settings, task.id),
            start_new_session=True, limit=1024 * 1024,
        )
        self._running[task.id] = proc
        try:
            await run_in_thread(self.leases.take, task.id, proc.pid)
            if task.id in self._cancelled or self._stopping:
                await self._terminate(proc)
            stderr_task = asyncio.create_task(_tail(proc.stderr))
            result: Result | None
            try:
                async with asyncio.timeout(self.settings.transcode_timeout_seconds):
                    result = await self._follow(task.id, proc)
            except TimeoutError:
                await self._terminate(proc)
                result = Result.failure("timeout", "the conversion took longer than "
                                        f"{self.settings.transcode_timeout_seconds:g} s")
            rc = await proc.wait()
            stderr = await stderr_task
        finally:
            if proc.returncode is None:  # cancelled mid-way (shutdown): never leave it behind
                await self._terminate(proc)
            self._running.pop(task.id, None)
            await run_in_thread(self.leases.release, task.id)
        if task.id in self._cancelled:
            return "done"  # the row is REVOKED already (or deleted)
        if self._stopping and (rc < 0 or (result is not None and result.code == "terminated")):
            return "stopped"  # left STARTED on purpose: the next start() resumes it
        if result is None:
            reason = f"signal {-rc}" if rc < 0 else f"exit code {rc}"
            result = Result.failure("crashed", f"the transcoder ended ({reason}) without a "
                                    f"result: {stderr.strip()[-500:] or 'no output'}")
        if not result.ok:
            # ffmpeg's own words are for operators: the log (and the row's error_detail).
            log.warning("task %s: attempt failed (%s): %s%s", task.id, result.code, result.error,
                        f"\n{result.detail}" if result.detail else "")
        if not result.ok and rc == contract.EXIT_RETRYABLE and not last:
            return "retry"
        if await self._db(updates.record_result, self.sessions, task.id, result):
            self._ended(task, result, time.monotonic() - began)
        if not result.ok:
            await run_in_thread(self._discard_output, task)
        return "done"

    def _ended(self, task: Task, result: Result, seconds: float) -> None:
        """The end is recorded: into the conversion metrics, and one line into the log."""
        state = TaskState.SUCCESS if result.ok else TaskState.FAILURE
        self.metrics.observe(task.conversion_type, state.value, seconds, result.duration)
        if result.ok:
            speed = f", {result.duration / seconds:.2f}x real time" if result.duration else ""
            log.info("task %s: SUCCESS, %s in %.1f s%s", task.id, task.conversion_type, seconds,
                     speed)
        else:
            log.info("task %s: FAILURE (%s) after %.1f s: %s", task.id, result.code, seconds,
                     result.error)

    def _discard_output(self, task: Task) -> None:
        """A failed task keeps its input (it may be converted again), never an output."""
        try:
            outputs.delete_all(self.storage, task.id)
        except StorageError as exc:  # the next start's sweep removes it
            log.warning("task %s: could not remove its output: %s", task.id, exc)

    async def _follow(self, task_id: str, proc: asyncio.subprocess.Process) -> Result | None:
        """Read the transcoder's JSON lines: progress into the row, the result returned."""
        assert proc.stdout is not None
        result: Result | None = None
        last_write, last_value = 0.0, Progress(0.0)
        async for line in proc.stdout:
            event = contract.parse_line(line)
            if isinstance(event, Result):
                result = event
            elif isinstance(event, Progress):
                now = time.monotonic()
                # The first report (progress 0, the input's duration) too: the ETA needs it.
                if event != last_value and now - last_write >= PROGRESS_INTERVAL:
                    last_write = now
                    try:
                        await run_in_thread(
                            updates.record_progress, self.sessions, task_id, event.progress,
                            fps=event.fps, speed=event.speed,
                            input_duration=event.input_duration)
                        last_value = event
                    except (OperationalError, InterfaceError):
                        pass  # progress is best effort: the database may be back next time
        return result


async def _tail(stream: asyncio.StreamReader | None) -> str:
    """Keep the last few KiB of stderr for the error message; never the whole thing."""
    if stream is None:
        return ""
    tail = b""
    while chunk := await stream.read(65536):
        tail = (tail + chunk)[-STDERR_TAIL:]
    return tail.decode("utf-8", "replace")
