"""Real servers for the test session: a throwaway PostgreSQL cluster and moto's S3 server.

Each starts on a free loopback port and is torn down at the end. When one can't start, tests that
need it skip with the reason, unless ``VIDCONV_TEST_REQUIRE`` names it (CI): then they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
PG_BIN_DIRS = [f"/usr/lib/postgresql/{v}/bin" for v in (15, 16, 17)]


def required(name: str) -> bool:
    return name in os.environ.get("VIDCONV_TEST_REQUIRE", "").split(",")


def unavailable(name: str, reason: str) -> None:
    """Skip, or fail when CI requires ``name``."""
    if required(name):
        pytest.fail(f"{name} is required (VIDCONV_TEST_REQUIRE) but unavailable: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


@contextmanager
def running(name: str, server: AbstractContextManager[T]) -> Iterator[T]:
    """Enter a server's context; when it can't start, skip (or fail when ``name`` is required)."""
    try:
        value = server.__enter__()
    except Exception as exc:  # noqa: BLE001 - any failure to start means "no server here"
        unavailable(name, str(exc))
        raise  # unreachable: unavailable() skips or fails
    try:
        yield value
    finally:
        server.__exit__(None, None, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_bin() -> Path | None:
    for d in PG_BIN_DIRS:
        if Path(d, "initdb").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PostgresServer:
    port: int
    socket_dir: Path
    bin_dir: Path
    data_dir: Path
    run_as: list[str]

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A fresh empty database; returns its SQLAlchemy URL."""
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", name],
            check=True, capture_output=True,
        )
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
             "-w", "stop"],
            capture_output=True,
        )

    def start(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w",
             "-l", str(self.data_dir / "server.log"),
             "-o", f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
                   " -c fsync=off",
             "start"],
            check=True, capture_output=True,
        )


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb) on this machine")
    root = Path(tempfile.mkdtemp(prefix="vidconv-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses root: run the cluster as the postgres user.
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    root.chmod(0o700)
    data_dir, socket_dir = root / "data", root / "sock"
    socket_dir.mkdir()
    if run_as:
        shutil.chown(socket_dir, "postgres", "postgres")
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres",
         "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )
    server = PostgresServer(free_port(), socket_dir, bin_dir, data_dir, run_as)
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class S3Server:
    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def env(self, bucket: str) -> dict[str, str]:
        return {
            "VIDCONV_S3_ENDPOINT": self.endpoint,
            "VIDCONV_S3_ACCESS_KEY": self.access_key,
            "VIDCONV_S3_SECRET_KEY": self.secret_key,
            "VIDCONV_S3_REGION": self.region,
            "VIDCONV_S3_BUCKET": bucket,
        }


@contextmanager
def s3_server(port: int | None = None) -> Iterator[S3Server]:
    """moto's S3 server in its own process, over HTTP on loopback (on ``port`` when given: a
    restart at the same address; moto keeps data in memory, so it comes back empty)."""
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(exe).exists():
        raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
    port = port or free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield S3Server(endpoint=f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(10)
