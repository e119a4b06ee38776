"""Per-task leases of the local executor: one pid file per running transcoder.

``<data dir>/run/<task id>.json`` holds the transcoder's pid and its start time. It is written
as soon as the transcoder runs and removed once it has ended. A server killed with SIGKILL
leaves its leases behind; the next start (``reap``) ends every process they name that is still
alive before any task is resumed, so a task never has two transcoders writing the same output.

The start time (``/proc/<pid>/stat`` on Linux, ``ps -o lstart=`` elsewhere) makes sure a pid
that the system has since given to another process is never taken for the transcoder. Ending
it: SIGTERM to its process group (the transcoder stops its ffmpeg and empties its scratch),
SIGCONT in case it was stopped, SIGKILL after a grace period (on Linux its ffmpeg then dies
with it through the parent-death signal).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("vidconv.executor")

GRACE_SECONDS = 5.0
GONE_TIMEOUT = 10.0


def process_start_time(pid: int) -> str | None:
    """An identity of the process ``pid`` beyond its number; None when there is no such one."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return None if fields[0] in ("Z", "X") else fields[19]  # zombies count as gone
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True,
                             text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


@dataclass(frozen=True)
class Lease:
    task_id: str
    pid: int
    started: str | None

    def alive(self) -> bool:
        now = process_start_time(self.pid)
        return now is not None and now == self.started


class Leases:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _path(self, task_id: str) -> Path:
        return self.run_dir / f"{task_id}.json"

    def take(self, task_id: str, pid: int) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = {"task_id": task_id, "pid": pid, "started": process_start_time(pid)}
        tmp = self._path(task_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._path(task_id))

    def release(self, task_id: str) -> None:
        self._path(task_id).unlink(missing_ok=True)

    def held(self) -> list[Lease]:
        found = []
        for path in sorted(self.run_dir.glob("*.json")) if self.run_dir.is_dir() else []:
            try:
                data = json.loads(path.read_text())
                found.append(Lease(str(data["task_id"]), int(data["pid"]), data.get("started")))
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)  # half-written: its process never got going
        return found

    def reap(self) -> list[str]:
        """End every transcoder an earlier run left alive; the ids of the tasks it ran.

        Blocking (up to GRACE_SECONDS per survivor); call it before any task is resumed.
        """
        ended = []
        for lease in self.held():
            if lease.alive():
                log.warning("task %s: its transcoder (pid %d) from an earlier run is still "
                            "alive; ending it before the task is resumed", lease.task_id,
                            lease.pid)
                _end(lease)
                ended.append(lease.task_id)
            self.release(lease.task_id)
        for tmp in self.run_dir.glob("*.tmp") if self.run_dir.is_dir() else []:
            tmp.unlink(missing_ok=True)
        return ended


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)  # the transcoder leads a session (and group) of its own
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _wait_gone(lease: Lease, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while lease.alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _end(lease: Lease) -> None:
    _signal_group(lease.pid, signal.SIGTERM)
    _signal_group(lease.pid, signal.SIGCONT)
    if _wait_gone(lease, GRACE_SECONDS):
        return
    _signal_group(lease.pid, signal.SIGKILL)
    if not _wait_gone(lease, GONE_TIMEOUT):
        raise RuntimeError(f"the transcoder of task {lease.task_id} (pid {lease.pid}) "
                           "survived SIGKILL")
