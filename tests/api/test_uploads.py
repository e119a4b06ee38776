"""tus resumable uploads through the app: the protocol's answers, limits, ownership, expiry,
and a finished upload made a task, on both backend pairs (SQLite + files, PostgreSQL + MinIO).

The real client against a real server, with connections cut mid-upload, is in
test_resumable_uploads.py.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import MakeSettings, open_client
from tests.api.helpers import Api
from vidconv.api.services.uploads import partial_path
from vidconv.db.models import Upload
from vidconv.settings import Settings
from vidconv.storage import S3Storage, make_storage

Clip = Callable[..., Path]
TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {"Content-Type": "application/offset+octet-stream"}


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(api: Api, length: int, filename: str = "clip.mp4", **headers: str) -> httpx.Response:
    return api.client.post("/api/uploads/", headers={
        **api.auth, **TUS, "Upload-Length": str(length), "Upload-Metadata": _meta(
            filename=filename), **headers})


def new_upload(api: Api, length: int, filename: str = "clip.mp4") -> str:
    r = create(api, length, filename)
    assert r.status_code == 201, r.text
    return str(r.headers["location"])


def patch(api: Api, url: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
    return api.client.patch(url, content=data, headers={
        **api.auth, **TUS, **CHUNK, "Upload-Offset": str(offset), **headers})


def head(api: Api, url: str) -> httpx.Response:
    return api.client.head(url, headers={**api.auth, **TUS})


def send_all(api: Api, url: str, data: bytes, chunk: int) -> None:
    for offset in range(0, len(data), chunk):
        r = patch(api, url, offset, data[offset:offset + chunk])
        assert r.status_code == 204, r.text
        assert int(r.headers["upload-offset"]) == min(len(data), offset + chunk)


def _settings(api: Api) -> Settings:
    settings: Settings = api.client.app.state.ctx.settings  # type: ignore[attr-defined]
    return settings


def stored_keys(api: Api) -> list[str]:
    """Every object in storage (inputs, outputs, an S3 upload's kept-aside tail)."""
    storage = make_storage(_settings(api))
    return sorted(k for prefix in ("inputs/", "outputs/", "uploads/") for k in storage.keys(prefix))


def upload_key(api: Api, url: str) -> str:
    """The object key a (not yet finished) upload's bytes will have."""
    with api.client.app.state.ctx.sessions() as session:  # type: ignore[attr-defined]
        row = session.get(Upload, url.rsplit("/", 1)[1])
        assert row is not None
        return row.storage_key


def unfinished_bytes(api: Api, url: str, key: str) -> list[str]:
    """What storage holds of an unfinished upload: its partial file, or S3 multipart uploads."""
    settings = _settings(api)
    storage = make_storage(settings)
    if isinstance(storage, S3Storage):
        # MinIO lists the multipart uploads of one object name, not of a prefix.
        found = storage.client._list_multipart_uploads(storage.bucket, prefix=key)
        return [u.upload_id for u in found.uploads]
    path = partial_path(api.client.app.state.ctx, url.rsplit("/", 1)[1])  # type: ignore[attr-defined]
    return [str(path)] if path.exists() else []


def test_options_tells_the_version_extensions_and_size_limit(api: Api) -> None:
    r = api.client.options("/api/uploads/")  # discovery: no token needed
    assert r.status_code == 204
    assert r.headers["tus-resumable"] == r.headers["tus-version"] == "1.0.0"
    assert set(r.headers["tus-extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "expiration", "checksum"}
    assert r.headers["tus-max-size"] == str(2 * 1024**3)
    assert "sha1" in r.headers["tus-checksum-algorithm"].split(",")


def test_an_upload_in_chunks_becomes_a_task_without_a_copy(
    backend_api: Api, make_clip: Clip
) -> None:
    api = backend_api
    data = make_clip(1.0).read_bytes()
    r = create(api, len(data), "mi vídeo.mp4")
    assert r.status_code == 201, r.text
    url = r.headers["location"]
    created = r.json()
    assert url == "/api/uploads/" + created["upload"]
    assert (created["offset"], created["length"]) == (0, len(data))
    assert r.headers["upload-offset"] == "0" and r.headers["upload-expires"].endswith("GMT")
    send_all(api, url, data[:20000], 7000)  # uneven chunks, each smaller than an S3 part
    r = head(api, url)
    assert (r.status_code, r.headers["upload-offset"]) == (200, "20000")
    assert r.headers["upload-length"] == str(len(data))
    assert r.headers["upload-metadata"] == _meta(filename="mi vídeo.mp4")
    assert r.headers["cache-control"] == "no-store"
    r = patch(api, url, 20000, data[20000:])
    assert (r.status_code, r.headers["upload-offset"]) == (204, str(len(data)))
    [stored] = stored_keys(api)  # the whole file, and nothing kept aside any more
    assert stored.endswith("/mi_vídeo.mp4")
    r = api.client.post("/api/tasks", headers=api.auth,
                        json={"upload": created["upload"], "conversion_type": "webm"})
    assert r.status_code == 201, r.text
    task = api.wait(r.json()["task_id"])
    assert task["state"] == "SUCCESS", task
    assert (task["file_name"], task["input_size"]) == ("mi_vídeo.mp4", len(data))
    # The task's input is the uploaded object itself, at the key the upload was given.
    assert stored_keys(api) == sorted([stored, f"outputs/{task['task_id']}/mi_vídeo.webm"])
    assert stored == f"inputs/{task['task_id']}/mi_vídeo.mp4"
    assert head(api, url).status_code == 404  # the upload is the task's now
    r = api.client.post("/api/tasks", headers=api.auth,
                        json={"upload": created["upload"], "conversion_type": "mp4"})
    assert r.status_code == 404


def test_creation_with_upload_takes_the_first_chunk(api: Api) -> None:
    r = api.client.post("/api/uploads/", content=b"x" * 1000, headers={
        **api.auth, **TUS, **CHUNK, "Upload-Length": "3000"})
    assert r.status_code == 201, r.text
    assert r.headers["upload-offset"] == "1000" and r.json()["offset"] == 1000
    assert head(api, r.headers["location"]).headers["upload-offset"] == "1000"


def test_a_wrong_offset_is_409_and_keeps_nothing(api: Api) -> None:
    url = new_upload(api, 100)
    assert patch(api, url, 0, b"a" * 40).status_code == 204
    r = patch(api, url, 10, b"b" * 40)
    assert r.status_code == 409 and "resume from there" in r.json()["message"]
    assert r.headers["tus-resumable"] == "1.0.0"
    assert head(api, url).headers["upload-offset"] == "40"
    assert Path(unfinished_bytes(api, url, "")[0]).read_bytes() == b"a" * 40


def test_a_task_from_an_unfinished_upload_is_409(api: Api) -> None:
    url = new_upload(api, 100)
    patch(api, url, 0, b"a" * 40)
    r = api.client.post("/api/tasks", headers=api.auth,
                        json={"upload": url.rsplit("/", 1)[1], "conversion_type": "mp4"})
    assert r.status_code == 409 and "40 of 100 bytes" in r.json()["message"]


def test_another_users_upload_is_404_like_a_missing_one(api: Api) -> None:
    url = new_upload(api, 100)
    patch(api, url, 0, b"a" * 100)
    other = Api(api.client)
    other.signup()
    missing = "/api/uploads/" + "0" * 32
    for target in (url, missing):
        assert head(other, target).status_code == 404
        r = patch(other, target, 100, b"b")
        assert (r.status_code, r.json()) == (404, {"message": "upload not found"})
        r = other.client.delete(target, headers={**other.auth, **TUS})
        assert (r.status_code, r.json()) == (404, {"message": "upload not found"})
        r = other.client.post("/api/tasks", headers=other.auth, json={
            "upload": target.rsplit("/", 1)[1], "conversion_type": "mp4"})
        assert (r.status_code, r.json()) == (404, {"message": "upload not found"})
    assert head(api, url).headers["upload-offset"] == "100"  # untouched


def test_every_upload_route_needs_a_token(api: Api) -> None:
    url = new_upload(api, 10)
    for r in (api.client.post("/api/uploads/", headers={**TUS, "Upload-Length": "10"}),
              api.client.head(url, headers=TUS),
              api.client.patch(url, content=b"x", headers={**TUS, **CHUNK, "Upload-Offset": "0"}),
              api.client.delete(url, headers=TUS)):
        assert r.status_code == 401
    assert head(api, url).headers["upload-offset"] == "0"


def test_the_protocol_version_is_checked(api: Api) -> None:
    url = new_upload(api, 10)
    chunk = {**api.auth, **CHUNK, "Upload-Offset": "0"}
    r = api.client.patch(url, content=b"x", headers=chunk)
    assert r.status_code == 400 and "Tus-Resumable" in r.json()["message"]
    r = api.client.patch(url, content=b"x", headers={**chunk, "Tus-Resumable": "0.2.2"})
    assert (r.status_code, r.headers["tus-version"]) == (412, "1.0.0")
    assert "1.0.0" in r.json()["message"]
    assert head(api, url).headers["upload-offset"] == "0"


@pytest.mark.parametrize("headers,status,words", [
    ({"Upload-Length": "-1"}, 400, "whole number"),
    ({"Upload-Length": "0"}, 400, "at least 1"),
    ({"Upload-Length": str(2 * 1024**3 + 1)}, 413, "limit"),
    ({"Upload-Defer-Length": "1"}, 400, "Upload-Length"),
    ({"Upload-Length": "5", "Upload-Metadata": "filename not-base64!"}, 400, "Upload-Metadata"),
    ({"Upload-Length": "5", "Content-Type": "text/plain"}, 415, "offset+octet-stream"),
])
def test_bad_creations_are_refused_and_create_nothing(
    api: Api, headers: dict[str, str], status: int, words: str
) -> None:
    r = api.client.post("/api/uploads/", content=b"hello" if "Content-Type" in headers else b"",
                        headers={**api.auth, **TUS, **headers})
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    assert stored_keys(api) == [] and not list((_settings(api).data_dir / "uploads").glob("*"))


def test_a_chunk_past_the_length_is_413(api: Api) -> None:
    url = new_upload(api, 10)
    r = patch(api, url, 0, b"x" * 11)
    assert r.status_code == 413 and "Upload-Length" in r.json()["message"]
    assert head(api, url).headers["upload-offset"] == "0"


def test_too_many_open_uploads_is_429_until_one_goes(
    make_settings: MakeSettings
) -> None:
    with open_client(make_settings(max_open_uploads=2)) as client:
        api = Api(client)
        api.signup()
        first = new_upload(api, 10)
        new_upload(api, 10)
        r = create(api, 10)
        assert r.status_code == 429 and "2 uploads" in r.json()["message"]
        assert 0 < int(r.headers["retry-after"]) <= 24 * 3600
        other = Api(client)
        other.signup()
        assert create(other, 10).status_code == 201  # the limit is per user
        assert api.client.delete(first, headers={**api.auth, **TUS}).status_code == 204
        assert create(api, 10).status_code == 201


def test_a_checksum_is_verified_and_a_mismatch_keeps_nothing(backend_api: Api) -> None:
    api = backend_api
    url = new_upload(api, 200)
    good = b"a" * 120
    digest = base64.b64encode(hashlib.sha1(good).digest()).decode()
    r = patch(api, url, 0, good, **{"Upload-Checksum": f"sha1 {digest}"})
    assert (r.status_code, r.headers["upload-offset"]) == (204, "120")
    r = patch(api, url, 120, b"b" * 80, **{"Upload-Checksum": f"sha256 {digest}"})
    assert r.status_code == 460 and "Upload-Checksum" in r.json()["message"]
    assert head(api, url).headers["upload-offset"] == "120"
    right = base64.b64encode(hashlib.md5(b"c" * 80).digest()).decode()
    r = patch(api, url, 120, b"c" * 80, **{"Upload-Checksum": f"md5 {right}"})
    assert (r.status_code, r.headers["upload-offset"]) == (204, "200")
    [key] = stored_keys(api)
    assert b"".join(make_storage(_settings(api)).iter_range(key)) == good + b"c" * 80
    r = patch(api, url, 200, b"", **{"Upload-Checksum": "crc32 AAAA"})
    assert r.status_code == 400 and "sha1" in r.json()["message"]


def test_termination_removes_the_bytes(backend_api: Api) -> None:
    api = backend_api
    url = new_upload(api, 100)
    patch(api, url, 0, b"a" * 30)
    key = upload_key(api, url)
    assert unfinished_bytes(api, url, key) != [] and len(stored_keys(api)) <= 1
    r = api.client.delete(url, headers={**api.auth, **TUS})
    assert r.status_code == 204 and r.headers["tus-resumable"] == "1.0.0"
    assert head(api, url).status_code == 404
    assert unfinished_bytes(api, url, key) == [] and stored_keys(api) == []


def test_an_expired_upload_is_gone_from_storage(backend_settings: Settings) -> None:
    with open_client(replace(backend_settings, upload_expiry_seconds=3)) as client:
        api = Api(client)
        api.signup()
        unfinished = new_upload(api, 100)
        patch(api, unfinished, 0, b"a" * 30)
        key = upload_key(api, unfinished)
        finished = new_upload(api, 10)
        patch(api, finished, 0, b"b" * 10)
        assert len(stored_keys(api)) >= 1 and unfinished_bytes(api, unfinished, key) != []
        deadline = time.monotonic() + 30
        while stored_keys(api) or unfinished_bytes(api, unfinished, key):
            assert time.monotonic() < deadline, stored_keys(api)
            time.sleep(0.2)
        for url in (unfinished, finished):
            assert head(api, url).status_code == 404
            assert patch(api, url, 30, b"a").status_code == 404
