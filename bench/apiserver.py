"""Helpers for the API benchmarks: run `vidconv serve` on a loopback port, sign a user in."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@dataclass
class Server:
    url: str
    pid: int
    data_dir: Path

    def rss_kib(self) -> int:
        return _status_kib(self.pid, "VmRSS")

    def hwm_kib(self) -> int:
        return _status_kib(self.pid, "VmHWM")

    def reset_peak(self) -> None:
        # Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def login(self) -> dict[str, str]:
        name = "b" + uuid.uuid4().hex[:10]
        with httpx.Client(base_url=self.url, timeout=60) as http:
            http.post("/api/auth/signup", json={
                "username": name, "email": f"{name}@example.com",
                "password1": PASSWORD, "password2": PASSWORD}).raise_for_status()
            r = http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
            r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['token']}"}


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@contextmanager
def vidconv_server(**env: str) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="vidconv-bench-") as tmp:
        port = free_port()
        full_env = {**os.environ, "VIDCONV_PORT": str(port), "VIDCONV_DATA_DIR": tmp,
                    "VIDCONV_LOG_LEVEL": "warning", **env}
        proc = subprocess.Popen([sys.executable, "-m", "vidconv.cli", "serve"], env=full_env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            yield Server(url, proc.pid, Path(tmp))
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not ended 20 s later."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
