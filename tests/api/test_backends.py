"""A whole conversion per backend pair (SQLite + local files, PostgreSQL + S3): upload, poll,
download with ranges, delete; then the file's container and duration are checked with ffprobe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.helpers import Api
from tests.media import ffprobe
from vidconv.storage import ObjectNotFound

Clip = Callable[..., Path]


def test_convert_download_and_delete(backend_api: Api, make_clip: Clip, tmp_path: Path) -> None:
    api = backend_api
    task_id = api.submit(make_clip(2.0), "webm")
    task = api.wait(task_id)
    assert task["state"] == "SUCCESS", task
    assert task["result"].endswith(".webm")

    r = api.client.get(f"/api/download?task_id={task_id}", headers=api.auth)
    assert r.status_code == 200
    assert r.headers["content-type"] == "video/webm"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert task["result"] in r.headers["content-disposition"]
    assert r.headers["accept-ranges"] == "bytes"
    assert len(r.content) == task["output_size"]
    out = tmp_path / "out.webm"
    out.write_bytes(r.content)
    probed = ffprobe(out)
    assert "webm" in probed["format"]["format_name"]  # type: ignore[index]
    codecs = {s["codec_name"] for s in probed["streams"]}  # type: ignore[attr-defined]
    assert codecs == {"vp9", "opus"}
    assert float(probed["format"]["duration"]) == pytest.approx(2.0, abs=0.2)  # type: ignore[index]

    size = len(r.content)
    url = f"/api/download?task_id={task_id}"
    part = api.client.get(url, headers={**api.auth, "Range": "bytes=10-109"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-109/{size}"
    assert part.content == r.content[10:110]
    tail = api.client.get(url, headers={**api.auth, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == r.content[-50:]
    beyond = api.client.get(url, headers={**api.auth, "Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"

    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    from vidconv.db.models import Task

    with ctx.sessions() as s:
        row = s.get(Task, task_id)
    keys = [row.input_key, row.output_key]
    assert all(ctx.storage.size(k) > 0 for k in keys)
    assert api.client.delete(f"/api/tasks/{task_id}", headers=api.auth).status_code == 204
    for key in keys:
        with pytest.raises(ObjectNotFound):
            ctx.storage.size(key)
    assert api.client.get("/api/tasks", headers=api.auth).json() == {"tasks": []}


def test_readyz_reports_database_and_storage(backend_api: Api) -> None:
    r = backend_api.client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
    assert backend_api.client.get("/healthz").json() == {"status": "ok"}
