"""The local executor over an app's life: cancelling a running conversion, restarts, readiness."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.conftest import MakeSettings, open_client
from tests.api.helpers import Api
from tests.processes import processes as _processes
from tests.servers import free_port
from vidconv.db.models import Task
from vidconv.settings import Settings

Clip = Callable[..., Path]


def _long_clip(make_clip: Clip) -> Path:
    # Quick to generate (MPEG-4 part 2), slow enough to convert to webm that we catch it running.
    return make_clip(30.0, 640, 480, extra=("-c:v", "mpeg4", "-q:v", "8"))


def _descendants(pid: int) -> dict[int, str]:
    table, found, frontier = _processes(), {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _state, cmd) in table.items():
            if ppid == parent and child not in found:
                found[child] = cmd
                frontier.append(child)
    return found


def _alive(pids: list[int]) -> list[int]:
    table = _processes()
    return [p for p in pids if p in table and table[p][1] != "Z"]


def _wait_running(api: Api, task_id: str) -> None:
    deadline = time.monotonic() + 60
    while api.task(task_id)["progress"] <= 0:
        assert time.monotonic() < deadline, api.task(task_id)
        time.sleep(0.1)


def test_delete_of_a_running_conversion_ends_its_ffmpeg(api: Api, make_clip: Clip) -> None:
    task_id = api.submit(_long_clip(make_clip), "webm")
    _wait_running(api, task_id)
    executor = api.client.app.state.ctx.executor  # type: ignore[attr-defined]
    transcoder = executor._running[task_id].pid
    ffmpeg = [pid for pid, cmd in _descendants(transcoder).items() if "ffmpeg" in cmd]
    assert ffmpeg, "no ffmpeg under the transcoder"

    r = api.client.delete(f"/api/tasks/{task_id}", headers=api.auth)
    assert r.status_code == 204
    assert _alive([transcoder, *ffmpeg]) == []
    assert api.client.get(f"/api/tasks/{task_id}", headers=api.auth).status_code == 404
    objects = api.client.app.state.ctx.settings.objects_dir  # type: ignore[attr-defined]
    assert [p for p in objects.rglob("*") if p.is_file()] == []


def test_a_restart_resumes_unfinished_tasks(make_settings: MakeSettings, make_clip: Clip) -> None:
    settings = make_settings()
    with open_client(settings) as client:
        api = Api(client)
        api.signup()
        running = api.submit(_long_clip(make_clip), "webm")
        queued = api.submit(make_clip(1.0), "mp3")  # one worker: waits behind the first
        _wait_running(api, running)
        assert api.task(queued)["state"] == "PENDING"
    # The app stopped mid-conversion: the rows say so, and nothing is left running.
    with open_client(settings) as client:
        api.client = client
        assert api.wait(running)["state"] == "SUCCESS"
        assert api.task(running)["attempts"] == 2
        assert api.wait(queued)["state"] == "SUCCESS"


def test_a_task_interrupted_twice_fails_clearly(
    make_settings: MakeSettings, make_clip: Clip
) -> None:
    settings = make_settings()
    with open_client(settings) as client:
        api = Api(client)
        api.signup()
        task_id = api.submit(make_clip(1.0), "mp3")
        api.wait(task_id)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.sessions.begin() as s:  # as if the server died during its second attempt
            row = s.get(Task, task_id)
            row.status, row.attempts, row.finished_at = "STARTED", 2, None
    with open_client(settings) as client:
        api.client = client
        task = api.task(task_id)
        assert task["state"] == "FAILURE"
        assert task["error_code"] == "interrupted"
        assert "server stopped during the conversion" in task["error"]


def test_readyz_is_503_when_storage_is_unreachable(make_settings: MakeSettings) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings: Settings = make_settings(storage="s3", s3_endpoint=dead)
    with open_client(settings) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["database"] == "ok"
        assert checks["storage"].startswith("unavailable: S3 endpoint unreachable"), checks
        assert r.json()["message"].startswith("not ready: storage unavailable: S3 endpoint")
        assert client.get("/healthz").status_code == 200


@pytest.mark.s3
@pytest.mark.parametrize(("wrong", "code"), [("VIDCONV_S3_ACCESS_KEY", "InvalidAccessKeyId"),
                                             ("VIDCONV_S3_SECRET_KEY", "SignatureDoesNotMatch")])
def test_wrong_s3_credentials_are_named_at_start_and_by_readyz(
    s3_env: dict[str, str], make_settings: MakeSettings, caplog: pytest.LogCaptureFixture,
    wrong: str, code: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="vidconv.api")
    settings: Settings = make_settings({**s3_env, wrong: s3_env[wrong] + "-wrong"})
    with open_client(settings) as client:
        said = [r.getMessage() for r in caplog.records if r.name == "vidconv.api"]
        assert any("S3 refused the credentials" in m and code in m for m in said), said
        r = client.get("/readyz")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["database"] == "ok"
        assert checks["storage"].startswith(f"unavailable: S3 refused the credentials ({code}"), \
            checks
        assert "check VIDCONV_S3_ACCESS_KEY and VIDCONV_S3_SECRET_KEY" in checks["storage"]
        assert "credentials" in r.json()["message"]
        assert client.get("/healthz").status_code == 200  # alive: a restart would not help


def test_a_retryable_failure_is_retried_once_then_fails(api: Api, make_clip: Clip) -> None:
    blocker = api.submit(_long_clip(make_clip), "webm")  # holds the only worker
    _wait_running(api, blocker)
    task_id = api.submit(make_clip(1.0), "mp3")
    # A file where the output's folder should be: delivering the output fails with an OS
    # error, which the transcoder calls retryable (exit 1).
    objects = api.client.app.state.ctx.settings.objects_dir  # type: ignore[attr-defined]
    (objects / "outputs").mkdir(parents=True, exist_ok=True)
    (objects / "outputs" / task_id).write_text("in the way")
    assert api.client.delete(f"/api/tasks/{blocker}", headers=api.auth).status_code == 204
    task = api.wait(task_id)
    assert task["state"] == "FAILURE", task
    assert task["attempts"] == 2
    assert task["error"]
