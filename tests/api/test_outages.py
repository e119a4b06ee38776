"""A database or a storage that goes away under the running app: 503 with Retry-After, nothing
half-made kept, a finished conversion's result not lost, and normal service once it is back.

Real servers, private to this module (the session ones are shared and must stay up): a
PostgreSQL cluster stopped and started with pg_ctl, and a MinIO server killed and started again
on the same port and the same data dir, as storage comes back after a crash: what it had
acknowledged before is all there again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.api.conftest import MakeSettings, open_client
from tests.api.helpers import PASSWORD, Api
from tests.conftest import ffmpeg_path
from vidconv.settings import Settings


@pytest.fixture(scope="module")
def private_pg() -> Iterator[servers.PostgresServer]:
    with servers.running("postgres", servers.postgres_server()) as server:
        yield server


@contextlib.contextmanager
def database_down(pg: servers.PostgresServer) -> Iterator[None]:
    pg.stop()
    try:
        yield
    finally:
        pg.start()


@pytest.fixture
def private_minio() -> Iterator[servers.MinioServer]:
    with servers.running("s3", servers.minio_server()) as server:
        yield server


@contextlib.contextmanager
def storage_down(minio: servers.MinioServer) -> Iterator[None]:
    minio.stop(kill=True)
    try:
        yield
    finally:
        minio.start()


def assert_unavailable(r: httpx.Response, what: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["retry-after"]) > 0
    message = r.json()["message"]
    assert what in message and "try again" in message, message


def files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.postgres
def test_database_outage_answers_503_keeps_nothing_and_recovers(
    private_pg: servers.PostgresServer, make_settings: MakeSettings, make_clip: Callable[..., Path]
) -> None:
    settings = make_settings({"VIDCONV_DATABASE_URL": private_pg.create_database("outage_db")})
    clip = make_clip(seconds=1.0)
    tmp_dir = settings.data_dir / "tmp"
    with open_client(settings) as client:
        api = Api(client)
        username = "u" + uuid.uuid4().hex[:10]
        api.signup(username)
        done = api.submit(clip)
        assert api.wait(done)["state"] == "SUCCESS"
        objects_before = files_under(settings.objects_dir)

        with database_down(private_pg):
            assert_unavailable(api.upload(clip, "webm"), "database")
            assert files_under(settings.objects_dir) == objects_before  # no input stored
            assert files_under(tmp_dir) == set()  # and the upload's temp file is gone
            assert_unavailable(client.get("/api/tasks", headers=api.auth), "database")
            assert_unavailable(client.get(f"/api/tasks/{done}", headers=api.auth), "database")
            assert_unavailable(client.get("/api/download", params={"task_id": done},
                                          headers=api.auth), "database")
            assert_unavailable(client.delete(f"/api/tasks/{done}", headers=api.auth),
                               "database")
            assert_unavailable(client.post("/api/auth/login", json={
                "username": username, "password": PASSWORD}), "database")

        # The same app, once PostgreSQL is back: the failed calls changed nothing.
        r = client.get("/api/tasks", headers=api.auth)
        assert r.status_code == 200 and [t["task_id"] for t in r.json()["tasks"]] == [done]
        assert files_under(settings.objects_dir) == objects_before
        r = client.get("/api/download", params={"task_id": done}, headers=api.auth)
        assert r.status_code == 200 and len(r.content) > 1000
        again = api.submit(clip, "webm")
        assert api.wait(again)["state"] == "SUCCESS"
        assert client.delete(f"/api/tasks/{done}", headers=api.auth).status_code == 204
        assert client.get(f"/api/tasks/{done}", headers=api.auth).status_code == 404


def _gated_ffmpeg(tmp_path: Path, gate: Path) -> str:
    """An ffmpeg that waits for ``gate`` to exist: the conversion ends exactly when we say."""
    real = ffmpeg_path()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\nwhile [ ! -e "{gate}" ]; do sleep 0.05; done\n'
                       f'exec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    probe = Path(real).with_name("ffprobe")
    if probe.exists():
        os.symlink(probe, bin_dir / "ffprobe")
    return str(wrapper)


@pytest.mark.postgres
def test_a_result_is_recorded_after_a_brief_database_outage(
    private_pg: servers.PostgresServer, make_settings: MakeSettings,
    make_clip: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="vidconv.executor")
    gate = tmp_path / "gate"
    settings: Settings = make_settings(
        {"VIDCONV_DATABASE_URL": private_pg.create_database("outage_result")},
        ffmpeg=_gated_ffmpeg(tmp_path, gate),
    )

    def retrying_result() -> bool:
        return any("retrying record_result" in r.getMessage() for r in caplog.records)

    with open_client(settings) as client:
        api = Api(client)
        api.signup()
        task_id = api.submit(make_clip(seconds=1.0))
        api.wait(task_id, ("STARTED",))
        with database_down(private_pg):
            gate.touch()  # the conversion finishes while the database is down
            wait_until(retrying_result, "the executor to retry writing the result")
        task = api.wait(task_id)
        assert task["state"] == "SUCCESS", task
        assert task["output_size"] and task["output_size"] > 1000
        r = client.get("/api/download", params={"task_id": task_id}, headers=api.auth)
        assert r.status_code == 200 and len(r.content) == task["output_size"]


@pytest.mark.s3
def test_storage_outage_answers_503_keeps_nothing_and_recovers(
    private_minio: servers.MinioServer, make_settings: MakeSettings,
    make_clip: Callable[..., Path],
) -> None:
    clip = make_clip(seconds=1.0)
    settings = make_settings({"VIDCONV_STORAGE": "s3", **private_minio.env("outage")})
    tmp_dir = settings.data_dir / "tmp"
    with open_client(settings) as client:  # start-up creates the bucket
        api = Api(client)
        api.signup()
        done = api.submit(clip)
        assert api.wait(done)["state"] == "SUCCESS"
        before = client.get("/api/download", params={"task_id": done}, headers=api.auth)
        assert before.status_code == 200 and len(before.content) > 1000

        with storage_down(private_minio):  # the S3 endpoint is gone
            assert_unavailable(api.upload(clip, "webm"), "storage")
            assert files_under(tmp_dir) == set()  # no temp file left
            r = client.post("/api/tasks", headers=api.auth,  # a re-use of the earlier upload
                            json={"file": done, "conversion_type": "webm"})
            assert_unavailable(r, "storage")
            assert files_under(tmp_dir) == set()
            r = client.get("/api/tasks", headers=api.auth)  # and no task row
            assert r.status_code == 200 and [t["task_id"] for t in r.json()["tasks"]] == [done]
            assert_unavailable(client.get("/api/download", params={"task_id": done},
                                          headers=api.auth), "storage")
            assert_unavailable(client.delete(f"/api/tasks/{done}", headers=api.auth),
                               "storage")
            assert api.task(done)["state"] == "SUCCESS"  # the failed DELETE kept the task
            assert client.get("/readyz").status_code == 503

        # Back on the same address and data: the same app serves what it stored before, and
        # none of the refused calls left an object behind.
        assert client.get("/readyz").status_code == 200
        r = client.get("/api/download", params={"task_id": done}, headers=api.auth)
        assert r.status_code == 200 and r.content == before.content
        keys = {o.object_name for o in private_minio.client().list_objects("outage",
                                                                           recursive=True)}
        assert keys == {f"inputs/{done}/{clip.name}", f"outputs/{done}/{clip.stem}.mp4"}, keys
        again = api.submit(clip, "webm")
        assert api.wait(again)["state"] == "SUCCESS"
        r = client.get("/api/download", params={"task_id": again}, headers=api.auth)
        assert r.status_code == 200 and len(r.content) > 1000
        assert client.delete(f"/api/tasks/{done}", headers=api.auth).status_code == 204
        assert client.get(f"/api/tasks/{done}", headers=api.auth).status_code == 404
