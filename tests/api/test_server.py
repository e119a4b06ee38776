"""`vidconv serve` for real: uvicorn on a loopback port, a fresh data dir, the README's session."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests import live
from tests.api.helpers import PASSWORD
from tests.media import ffprobe

Clip = Callable[..., Path]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with live.running(tmp_path / "var") as running:
        yield running.url, running.data


def test_a_start_logs_the_migrations_it_applies_and_no_alembic_chatter(tmp_path: Path) -> None:
    logs = []
    for _ in range(2):  # a fresh data dir, then a restart with nothing to migrate
        logs.append(live.start(tmp_path / "var").stop())
    first, second = logs
    assert "vidconv.db: database migrated to revision 0001, users and tasks" in first
    assert "database migrated" not in second
    for log in logs:
        assert "alembic" not in log, log
        assert "Application startup complete" in log


def test_the_readme_session_over_real_http(
    server: tuple[str, Path], make_clip: Clip, tmp_path: Path
) -> None:
    base, data = server
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/readyz").json()["status"] == "ready"
        r = http.post("/api/auth/signup", json={"username": "ana", "email": "ana@example.com",
                                                "password1": PASSWORD, "password2": PASSWORD})
        assert r.status_code == 201
        token = http.post("/api/auth/login",
                          json={"username": "ana", "password": PASSWORD}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        clip = make_clip(2.0)
        with clip.open("rb") as f:
            r = http.post("/api/tasks", headers=auth, files={"file": ("clip.mp4", f)},
                          data={"conversion_type": "avi"})
        assert r.status_code == 201, r.text
        task_id = r.json()["task_id"]
        deadline = time.monotonic() + 60
        while (task := http.get(f"/api/tasks/{task_id}", headers=auth).json())["state"] in (
                "PENDING", "STARTED"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert task["state"] == "SUCCESS", task
        r = http.get("/api/download", params={"task_id": task_id}, headers=auth)
        assert r.status_code == 200
        assert r.headers["content-disposition"] == (
            "attachment; filename=\"clip.avi\"; filename*=UTF-8''clip.avi")
        out = tmp_path / "clip.avi"
        out.write_bytes(r.content)
        probed = ffprobe(out)
        assert probed["format"]["format_name"] == "avi"  # type: ignore[index]

        # An upload announced bigger than the limit is refused before its body is read.
        with socket.create_connection((http.base_url.host, http.base_url.port)) as sock:
            sock.sendall(b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         + token.encode() + b"\r\nContent-Type: multipart/form-data; "
                         b"boundary=x\r\nContent-Length: 52428800\r\n\r\n--x\r\n")
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413 "), answer

    secret = data / "jwt-secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert (data / "vidconv.db").is_file()
