"""`vidconv serve` for real: uvicorn in its own process on a loopback port, a fresh data dir.

Its log (stderr) goes to a file, never a pipe nobody reads (a chatty server would block on a
full pipe). Stopping it checks what a clean shutdown looks like. Also a pytest plugin (of
tests/conftest.py): the ``live_server`` fixture starts as many as a test asks for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import PASSWORD
from tests.servers import dies_with_us, free_port, wait_for_port

# Variables of the developer's shell that would change what the server does.
CLEARED = ("VIDCONV_JWT_SECRET", "VIDCONV_DATABASE_URL", "VIDCONV_LOG_LEVEL", "VIDCONV_STORAGE",
           "VIDCONV_EXECUTOR", "VIDCONV_LOG_FORMAT", "VIDCONV_SERVER", "VIDCONV_TOKEN")


@dataclass
class LiveServer:
    url: str
    port: int
    data: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def account(self, username: str) -> dict[str, str]:
        """Sign ``username`` up and log in: the Authorization header of its token."""
        with httpx.Client(base_url=self.url, timeout=30) as http:
            r = http.post("/api/auth/signup", json={
                "username": username, "email": f"{username}@example.com",
                "password1": PASSWORD, "password2": PASSWORD})
            assert r.status_code == 201, r.text
            r = http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['token']}"}

    def stop(self) -> str:
        """SIGTERM; the server's whole log once it has shut down cleanly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        log = self.log()
        # uvicorn shuts down gracefully, then re-raises SIGTERM (exit by the signal).
        assert self.proc.returncode in (0, -signal.SIGTERM), log[-2000:]
        assert "Application shutdown complete" in log, log[-2000:]
        assert "Traceback" not in log, log[-2000:]
        return log


def start(data: Path, env: dict[str, str] | None = None) -> LiveServer:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if k not in CLEARED}
    full.update({"VIDCONV_PORT": str(port), "VIDCONV_DATA_DIR": str(data),
                 "VIDCONV_WORKERS": "1", "VIDCONV_MAX_UPLOAD_BYTES": str(5 * 1024 * 1024),
                 **(env or {})})
    data.mkdir(parents=True, exist_ok=True)
    log_path = data.parent / f"server-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*dies_with_us(), sys.executable, "-m", "vidconv.cli", "serve"],
                                env=full, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", port, data, log_path, proc)
    try:
        wait_for_port(port, timeout=30)
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"vidconv serve did not start:\n{server.log()[-3000:]}") from None
    return server


@contextmanager
def running(data: Path, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    server = start(data, env)
    try:
        yield server
    finally:
        server.stop()


StartServer = Callable[..., LiveServer]


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start `vidconv serve` with these VIDCONV_* variables (a fresh data dir each); each is
    stopped at the end, and must shut down cleanly."""
    started: list[LiveServer] = []

    def launch(env: dict[str, str] | None = None) -> LiveServer:
        server = start(tmp_path / f"var-{len(started)}", env)
        started.append(server)
        return server

    yield launch
    failures = []
    for server in started:  # every one, even when stopping another fails
        try:
            server.stop()
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            failures.append(f"{server.url}: {exc}")
    assert not failures, "\n".join(failures)
