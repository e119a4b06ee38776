"""`kill -9` of a real `vidconv serve` mid-conversion: nothing runs on, nothing is done twice.

Each test runs the server as its own process under uvicorn (as `make run` does), kills it with
SIGKILL while a transcoder and its ffmpeg convert, and starts it again on the same data dir.
What a user must see: no transcoder or ffmpeg left running for nobody, at most one transcoder
per task at any moment after the restart, one output, the right end state, and storage holding
only objects that a task row references.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import PASSWORD
from tests.processes import transcoders as _transcoders
from tests.servers import dies_with_us, end, free_port, wait_for_port

Clip = Callable[..., Path]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="reads the process table from /proc")


def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Server:
    """`vidconv serve` on a data dir; ``start`` again after ``kill`` to restart it."""

    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "VIDCONV_PORT": str(self.port), "VIDCONV_DATA_DIR": str(self.data),
               "VIDCONV_WORKERS": "1", "VIDCONV_LOG_LEVEL": "info"}
        for name in ("VIDCONV_JWT_SECRET", "VIDCONV_DATABASE_URL", "VIDCONV_STORAGE"):
            env.pop(name, None)
        log = self.data.parent / f"server-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as err:
            self.proc = subprocess.Popen([*dies_with_us(), sys.executable, "-m", "vidconv.cli",
                                          "serve"], env=env,
                                         stdout=subprocess.DEVNULL, stderr=err)
        wait_for_port(self.port, timeout=60)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        end(self.proc)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs)

    def objects(self) -> list[str]:
        root = self.data / "objects"
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@contextmanager
def _server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "var")
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]
    assert " ERROR " not in server.log_text(), server.log_text()[-3000:]


class Client:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.base, timeout=30)
        name = "u" + uuid.uuid4().hex[:8]
        r = self.http.post("/api/auth/signup", json={
            "username": name, "email": f"{name}@example.com",
            "password1": PASSWORD, "password2": PASSWORD})
        assert r.status_code == 201, r.text
        token = self.http.post("/api/auth/login",
                               json={"username": name, "password": PASSWORD}).json()["token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def reconnect(self) -> None:  # the token stays valid: the secret is kept in the data dir
        headers = dict(self.http.headers)
        self.http.close()
        self.http = httpx.Client(base_url=self.server.base, timeout=30, headers=headers)

    def submit(self, clip: Path, fmt: str) -> str:
        with clip.open("rb") as f:
            r = self.http.post("/api/tasks", files={"file": ("clip.mp4", f)},
                               data={"conversion_type": fmt})
        assert r.status_code == 201, r.text
        return str(r.json()["task_id"])

    def task(self, task_id: str) -> dict[str, object]:
        r = self.http.get(f"/api/tasks/{task_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_converting(self, task_id: str) -> dict[int, str]:
        """Until its ffmpeg runs and has reported progress; the task's processes then."""
        _wait("the conversion to run", lambda: float(self.task(task_id)["progress"]) > 0  # type: ignore[arg-type]
              and "ffmpeg" in _transcoders(task_id).values())
        return _transcoders(task_id)

    def wait_end(self, task_id: str, timeout: float = 240.0) -> dict[str, object]:
        """Until the task ends, holding that it never has two transcoders at once."""
        deadline = time.monotonic() + timeout
        while (task := self.task(task_id))["state"] in ("PENDING", "STARTED"):
            running = [p for p, s in _transcoders(task_id).items() if s != "ffmpeg"]
            assert len(running) <= 1, f"two transcoders for one task: {running}"
            assert time.monotonic() < deadline, task
            time.sleep(0.1)
        return task


def _long_clip(make_clip: Clip) -> Path:
    # Quick to generate (MPEG-4 part 2); converting it to webm takes long enough to kill it.
    return make_clip(90.0, 640, 480, extra=("-c:v", "mpeg4", "-q:v", "8"))


def _kill_and_see_everything_end(server: Server, task_id: str) -> None:
    server.kill()
    _wait("the orphaned transcoder and ffmpeg to end", lambda: not _transcoders(task_id))
    # They stopped, rather than finished converting for nobody: no output was delivered.
    assert not [k for k in server.objects() if k.startswith("outputs/")], server.objects()


def test_a_killed_server_leaves_nothing_running_and_the_restart_converts_once(
    tmp_path: Path, make_clip: Clip
) -> None:
    with _server(tmp_path) as server:
        client = Client(server)
        task_id = client.submit(_long_clip(make_clip), "webm")
        before = client.wait_converting(task_id)
        assert list(before.values()).count("ffmpeg") == 1
        _kill_and_see_everything_end(server, task_id)  # parent-death signal: at once, no restart
        # What a server killed mid-request or mid-DELETE leaves: stray objects and temp files.
        objects, stray = server.data / "objects", f"outputs/{uuid.uuid4().hex}/gone.webm"
        (objects / stray).parent.mkdir(parents=True)
        (objects / stray).write_bytes(b"x")
        (objects / "inputs" / task_id / "clip.mp4.part").write_bytes(b"x")
        (server.data / "tmp" / "upload-killed").write_bytes(b"x")

        server.start()
        client.reconnect()
        task = client.wait_end(task_id)
        assert task["state"] == "SUCCESS", task
        assert task["attempts"] == 2
        assert server.objects() == [f"inputs/{task_id}/clip.mp4", f"outputs/{task_id}/clip.webm"]
        assert list((server.data / "tmp").iterdir()) == []
        assert list((server.data / "run").iterdir()) == []  # no lease outlives its transcoder
        r = client.http.get("/api/download", params={"task_id": task_id})
        assert r.status_code == 200 and r.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML: webm


def test_a_transcoder_that_outlived_its_server_is_ended_before_the_task_resumes_and_delete_stops_it(
    tmp_path: Path, make_clip: Clip
) -> None:
    with _server(tmp_path) as server:
        client = Client(server)
        task_id = client.submit(_long_clip(make_clip), "webm")
        [old] = [p for p, s in client.wait_converting(task_id).items() if s != "ffmpeg"]
        # Stopped, the transcoder cannot act on the parent-death signal: as on a system without
        # one, it outlives the server. The restarted server must end it from its lease.
        os.kill(old, signal.SIGSTOP)
        server.kill()
        time.sleep(1)  # the signal has been sent by now (not a timing assertion)
        assert old in _transcoders(task_id)

        server.start()
        client.reconnect()
        assert old not in _transcoders(task_id)  # ended during start-up, before serving
        resumed = client.wait_converting(task_id)
        assert old not in resumed and list(resumed.values()).count("ffmpeg") == 1

        r = client.http.delete(f"/api/tasks/{task_id}")
        assert r.status_code == 204
        assert _transcoders(task_id) == {}  # the DELETE returns once nothing of it runs
        assert client.http.get(f"/api/tasks/{task_id}").status_code == 404
        assert server.objects() == []
    assert "from an earlier run is still alive" in server.log_text()


def test_a_task_whose_server_is_killed_twice_fails_and_leaves_only_its_input(
    tmp_path: Path, make_clip: Clip
) -> None:
    with _server(tmp_path) as server:
        client = Client(server)
        task_id = client.submit(_long_clip(make_clip), "webm")
        client.wait_converting(task_id)
        _kill_and_see_everything_end(server, task_id)
        server.start()
        client.reconnect()
        client.wait_converting(task_id)  # the second attempt
        _kill_and_see_everything_end(server, task_id)

        server.start()
        client.reconnect()
        task = client.wait_end(task_id)
        assert (task["state"], task["error_code"], task["attempts"]) == (
            "FAILURE", "interrupted", 2), task
        assert "server stopped during the conversion 2 times" in str(task["error"])
        assert _transcoders(task_id) == {}
        assert server.objects() == [f"inputs/{task_id}/clip.mp4"]  # the row's input, no output
        assert client.http.delete(f"/api/tasks/{task_id}").status_code == 204
        assert server.objects() == []
