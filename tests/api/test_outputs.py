"""A task of several files (a video and its pictures) through the API, on both backends: the
detail lists them, each downloads by name, the whole downloads as one zip, a DELETE takes all."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient

from tests.api.helpers import Api
from vidconv import outputs
from vidconv.api.app import create_app
from vidconv.settings import Settings

Clip = Callable[..., Path]


def _stored(api: Api, task_id: str) -> list[str]:
    storage = api.client.app.state.ctx.storage  # type: ignore[attr-defined]
    return sorted(storage.keys(outputs.prefix(task_id)))


def test_a_video_with_pictures_lists_them_downloads_each_and_all_and_deletes_all(
        backend_api: Api, make_clip: Clip) -> None:
    api = backend_api
    task_id = api.submit(make_clip(2.0, width=160, height=120),
                         "mp4", thumbnail="jpg", sprites="true")
    task = api.wait(task_id)
    assert task["state"] == "SUCCESS", task
    assert task["result"].endswith(".mp4")
    files = task["files"]
    main = task["result"]
    assert [(f["name"], f["role"], f["type"]) for f in files] == [
        (main, "main", "video/mp4"), ("sprites.jpg", "sprites", "image/jpeg"),
        ("sprites.vtt", "sprites_index", "text/vtt"), ("thumbnail.jpg", "thumbnail", "image/jpeg")]
    assert task["output_size"] == sum(f["size"] for f in files)

    fetched = {}
    for f in files:
        r = api.client.get("/api/download", params={"task_id": task_id, "file": f["name"]},
                           headers=api.auth)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith(f["type"])
        assert len(r.content) == f["size"]
        fetched[f["name"]] = r.content
    assert fetched["thumbnail.jpg"][:3] == b"\xff\xd8\xff"
    assert fetched["sprites.vtt"].startswith(b"WEBVTT")
    r = api.client.get("/api/download", params={"task_id": task_id, "file": "thumbnail.jpg"},
                       headers={**api.auth, "Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == fetched["thumbnail.jpg"][:10]
    missing = api.client.get("/api/download", params={"task_id": task_id, "file": "x.jpg"},
                             headers=api.auth)
    assert missing.status_code == 404 and "no file named 'x.jpg'" in missing.json()["message"]

    r = api.client.get("/api/download", params={"task_id": task_id}, headers=api.auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith('attachment; filename="clip')
    assert int(r.headers["content-length"]) == len(r.content)
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert archive.testzip() is None
        assert {n: archive.read(n) for n in archive.namelist()} == fetched

    assert len(_stored(api, task_id)) == 4
    assert api.client.delete(f"/api/tasks/{task_id}", headers=api.auth).status_code == 204
    assert _stored(api, task_id) == []


def test_a_task_of_one_file_lists_it_and_downloads_it_as_it_is(
        api: Api, make_clip: Clip) -> None:
    task_id = api.submit(make_clip(1.0), "jpg", start="0.5")
    task = api.wait(task_id)
    assert task["state"] == "SUCCESS", task
    [only] = task["files"]
    assert (only["name"], only["role"], only["type"]) == (task["result"], "main", "image/jpeg")
    r = api.client.get("/api/download", params={"task_id": task_id}, headers=api.auth)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content[:3] == b"\xff\xd8\xff" and len(r.content) == only["size"]


def test_a_restart_keeps_every_file_of_a_finished_task(
        settings: Settings, api: Api, make_clip: Clip) -> None:
    task_id = api.submit(make_clip(1.0), "mp4", thumbnail="jpg", preview="gif")
    assert api.wait(task_id)["state"] == "SUCCESS"
    before = _stored(api, task_id)
    assert [k.rsplit("/", 1)[1] for k in before][1:] == ["preview.gif", "thumbnail.jpg"]
    # A restart on the same data sweeps what no task references: not a task's pictures.
    with TestClient(create_app(settings)) as again:
        assert again.get(f"/api/tasks/{task_id}", headers=api.auth).json()["state"] == "SUCCESS"
    assert _stored(api, task_id) == before
