"""Real servers for the test session: a throwaway PostgreSQL cluster and a MinIO server.

Each starts on a free loopback port and is torn down at the end. When one can't start, tests that
need it skip with the reason, unless ``VIDCONV_TEST_REQUIRE`` names it (CI): then they fail.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from minio import Minio

T = TypeVar("T")
PG_BIN_DIRS = [f"/usr/lib/postgresql/{v}/bin" for v in (15, 16, 17)]
MINIO_BUILD = Path(__file__).resolve().parents[1] / "hack" / "minio" / "build.sh"


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


def dies_with_us(signal: str = "TERM") -> list[str]:
    """A prefix for a server's argv: the kernel sends it ``signal`` when the test run dies,
    even by SIGKILL, so a killed run leaves no server behind (setpriv execs the server, so the
    Popen's process is the server itself)."""
    return ["setpriv", "--pdeathsig", signal] if shutil.which("setpriv") else []


def end(proc: subprocess.Popen[Any] | None, grace: float = 30) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``grace`` seconds: a process the test
    started is gone when this returns."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


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
    run_as: list[str]  # the postgres user when the tests run as root (initdb refuses root)
    process: subprocess.Popen[bytes] | None = None

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
        if self.process is not None:
            self.process.wait(timeout=60)
            self.process = None

    def start(self) -> None:
        """The postmaster as a child of this process, not daemonized by pg_ctl: the kernel
        ends it (SIGQUIT, immediate shutdown) when the test run dies, even by SIGKILL, so a
        killed run leaves no server behind."""
        user = (["--reuid=postgres", "--regid=postgres", "--init-groups"]
                if self.run_as else [])
        with open(self.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                ["setpriv", "--pdeathsig", "QUIT", *user, str(self.bin_dir / "postgres"),
                 "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.socket_dir),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while subprocess.run([str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1",
                              "-p", str(self.port)]).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start: {tail}")
            time.sleep(0.05)


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

    def client(self) -> Minio:
        """A minio client with these credentials, for a test's own look at the objects."""
        from minio import Minio

        return Minio(self.endpoint.split("://", 1)[1], access_key=self.access_key,
                     secret_key=self.secret_key, secure=self.endpoint.startswith("https://"),
                     region=self.region)


def multipart_etag(path: Path, part_size: int) -> str:
    """The ETag S3 (and MinIO) gives an object uploaded in ``part_size`` parts: the MD5 of the
    parts' MD5s, a dash, the number of parts. Equal to the server's: every part arrived whole."""
    digests = []
    with path.open("rb") as f:
        while part := f.read(part_size):
            digests.append(hashlib.md5(part).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


GET_MINIO = ("get one with hack/minio/build.sh (needs Go 1.24 or newer; builds in minutes, "
             "once) or set VIDCONV_MINIO to a minio server binary")


_minio: list[tuple[Path | None, str]] = []  # the one answer, found once per session


def _find_minio(progress: Callable[[str], None]) -> tuple[Path | None, str]:
    given = os.environ.get("VIDCONV_MINIO")
    if given:
        if os.access(given, os.X_OK):
            return Path(given), ""
        return None, f"VIDCONV_MINIO={given} is not an executable file; {GET_MINIO}"
    proc = subprocess.Popen([str(MINIO_BUILD)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    said = []
    for line in proc.stderr:  # only a build says anything: pass it on, it takes minutes
        said.append(line.rstrip())
        progress(line.rstrip())
    out = proc.stdout.read()
    if proc.wait() != 0:
        why = said[-1] if said else f"exit {proc.returncode}"
        return None, f"no MinIO server ({why}); {GET_MINIO}"
    return Path(out.split()[-1]) / "minio", ""


def minio_binary(progress: Callable[[str], None] | None = None) -> Path:
    """The MinIO server: ``$VIDCONV_MINIO``, else hack/minio/build.sh's (which builds it once
    into a cache outside the repo, then reuses it). Raises saying how to get one."""
    if not _minio:
        _minio.append(_find_minio(progress or (lambda _line: None)))
    path, error = _minio[0]
    if path is None:
        raise RuntimeError(error)
    return path


@dataclass
class MinioServer(S3Server):
    """The real MinIO server as a subprocess, on a loopback port, with its own data dir.

    ``stop()`` and ``start()`` restart it on the same port and the same data, as a server that
    comes back after an outage.
    """

    binary: Path = Path("minio")
    data_dir: Path = Path("data")
    config_dir: Path = Path("config")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    @property
    def log(self) -> Path:
        return self.config_dir / "minio.log"

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "MINIO_ROOT_USER": self.access_key,
               "MINIO_ROOT_PASSWORD": self.secret_key, "MINIO_SITE_REGION": self.region,
               "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*dies_with_us(), str(self.binary), "server", str(self.data_dir),
                 "--address", f"127.0.0.1:{self.port}",
                 "--certs-dir", str(self.config_dir / "certs")],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"MinIO did not get ready on port {self.port}: "
                                   + " / ".join(tail))
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=1) as r:
                return int(r.status) == 200
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM; ``kill``: SIGKILL, as a crash). Its data stays."""
        if kill and self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        end(self.proc, grace=10)
        self.proc = None


@contextmanager
def minio_server(data_dir: Path | None = None) -> Iterator[MinioServer]:
    """A fresh MinIO with generated root credentials, on a free loopback port; its data in
    ``data_dir`` when given (say, on a small filesystem), else in a temp dir."""
    binary = minio_binary()
    root = Path(tempfile.mkdtemp(prefix="vidconv-minio-"))
    server = MinioServer(
        endpoint=f"http://127.0.0.1:{free_port()}",
        access_key="vidconv-" + secrets.token_hex(4), secret_key=secrets.token_urlsafe(24),
        binary=binary, data_dir=data_dir or root / "data", config_dir=root,
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
