"""Direct transfers (VIDCONV_DIRECT_TRANSFERS=on) against a real MinIO over HTTP: downloads are
a 307 to a presigned S3 URL, and a direct upload's parts go to S3 through presigned URLs; the
URLs really work, carry the public endpoint, and stop working when they expire."""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import MakeSettings, open_client
from tests.api.helpers import Api
from tests.servers import S3Server
from vidconv.settings import Settings
from vidconv.storage import make_storage

pytestmark = [pytest.mark.s3]

Clip = Callable[..., Path]
MiB = 1024 * 1024
LIFETIME = 3  # seconds a presigned URL works


@pytest.fixture
def direct_settings(make_settings: MakeSettings, s3: S3Server, s3_env: dict[str, str]
                    ) -> Settings:
    # Clients reach S3 as "localhost", the API as 127.0.0.1: the URLs name the public one.
    public = s3.endpoint.replace("127.0.0.1", "localhost")
    return make_settings({**s3_env, "VIDCONV_DIRECT_TRANSFERS": "on",
                          "VIDCONV_S3_PUBLIC_ENDPOINT": public,
                          "VIDCONV_DIRECT_URL_SECONDS": str(LIFETIME)})


@pytest.fixture
def api(direct_settings: Settings) -> Iterator[Api]:
    with open_client(direct_settings) as client:
        a = Api(client)
        a.signup()
        yield a


def padded(clip: Path, size: int) -> bytes:
    """The clip and a top-level MP4 `free` box: ``size`` bytes that still convert."""
    data = clip.read_bytes()
    pad = size - len(data)
    return data + struct.pack(">I4s", pad, b"free") + bytes(range(256)) * ((pad - 8) // 256) \
        + b"\0" * ((pad - 8) % 256)


def stored(settings: Settings, key: str) -> bytes:
    return b"".join(make_storage(settings).iter_range(key))


def create_direct(api: Api, length: int, filename: str = "big.mp4") -> dict[str, object]:
    r = api.client.post("/api/uploads/", headers=api.auth,
                        json={"direct": True, "length": length, "filename": filename})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == r.json()["location"]
    return dict(r.json())


def put_part(url: str, data: bytes) -> httpx.Response:
    return httpx.put(url, content=data, timeout=60)  # no token: the URL is the permission


def test_a_download_is_a_redirect_to_a_short_lived_s3_url(
    api: Api, direct_settings: Settings, make_clip: Clip
) -> None:
    task = api.wait(api.submit(make_clip(1.0), "webm"))
    assert task["state"] == "SUCCESS", task
    r = api.client.get("/api/download", params={"task_id": task["task_id"]}, headers=api.auth,
                       follow_redirects=False)
    assert r.status_code == 307 and r.headers["cache-control"] == "no-store"
    url = r.headers["location"]
    bucket = direct_settings.s3_bucket
    assert url.startswith(f"{direct_settings.s3_public_endpoint}/{bucket}/outputs/")
    expected = stored(direct_settings, f"outputs/{task['task_id']}/{task['result']}")
    got = httpx.get(url)  # from S3 itself, with no token
    assert got.status_code == 200 and got.content == expected
    assert got.headers["content-type"] == "video/webm"
    assert got.headers["content-disposition"].startswith(
        f'attachment; filename="{task["result"]}"')
    part = httpx.get(url, headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == expected[10:100]
    time.sleep(LIFETIME + 1)
    late = httpx.get(url)
    assert late.status_code == 403 and b"expired" in late.content
    other = Api(api.client)
    other.signup()
    r = other.client.get("/api/download", params={"task_id": task["task_id"]},
                         headers=other.auth)
    assert r.status_code == 404  # no URL for someone else's file


def test_a_direct_upload_goes_to_s3_in_parts_and_converts(
    api: Api, direct_settings: Settings, make_clip: Clip
) -> None:
    data = padded(make_clip(1.0), 40 * MiB)
    created = create_direct(api, len(data), "big vídeo.mp4")
    plan = created["direct"]
    assert isinstance(plan, dict)
    assert plan["part_size"] == 16 * MiB
    parts = plan["parts"]
    assert [(p["part"], p["size"]) for p in parts] == [(1, 16 * MiB), (2, 16 * MiB),
                                                        (3, 8 * MiB)]
    public = str(direct_settings.s3_public_endpoint)
    assert all(p["url"].startswith(public + "/") for p in parts)
    complete = str(plan["complete"])
    r = api.client.post(complete, headers=api.auth)
    assert r.status_code == 409 and "1, 2, 3 of 3" in r.json()["message"]
    for p in parts[1:]:
        start = (p["part"] - 1) * 16 * MiB
        assert put_part(p["url"], data[start:start + p["size"]]).status_code == 200
    assert put_part(parts[0]["url"], data[:1000]).status_code == 200  # short: refused
    r = api.client.post(complete, headers=api.auth)
    assert r.status_code == 400 and "part 1 holds 1000 bytes" in r.json()["message"]
    r = api.client.post(f"/api/uploads/{created['upload']}/parts", headers=api.auth)
    assert [p["part"] for p in r.json()["direct"]["parts"]] == [1]  # only what is missing
    assert put_part(parts[0]["url"], data[:16 * MiB]).status_code == 200  # sent again
    r = api.client.post(complete, headers=api.auth)
    assert r.status_code == 200 and r.json()["offset"] == len(data)
    r = api.client.post("/api/tasks", headers=api.auth,
                        json={"upload": created["upload"], "conversion_type": "mp4"})
    assert r.status_code == 201, r.text
    task = api.wait(r.json()["task_id"], timeout=120)
    assert task["state"] == "SUCCESS", task
    assert (task["file_name"], task["input_size"]) == ("big_vídeo.mp4", len(data))
    key = f"inputs/{task['task_id']}/big_vídeo.mp4"
    assert hashlib.sha256(stored(direct_settings, key)).digest() == \
        hashlib.sha256(data).digest()


def test_part_urls_expire_and_fresh_ones_work(api: Api, direct_settings: Settings) -> None:
    created = create_direct(api, 100)
    plan = created["direct"]
    assert isinstance(plan, dict)
    [part] = plan["parts"]
    time.sleep(LIFETIME + 1)
    late = put_part(part["url"], b"x" * 100)
    assert late.status_code == 403 and b"expired" in late.content
    r = api.client.post(f"/api/uploads/{created['upload']}/parts", headers=api.auth)
    assert r.status_code == 200
    [fresh] = r.json()["direct"]["parts"]
    assert put_part(fresh["url"], b"x" * 100).status_code == 200
    r = api.client.post(str(plan["complete"]), headers=api.auth)
    assert r.status_code == 200 and r.json()["offset"] == 100
    # A URL signed for one upload's part cannot write another object: the key is signed.
    tampered = fresh["url"].replace(f"/{direct_settings.s3_bucket}/inputs/",
                                    f"/{direct_settings.s3_bucket}/outputs/")
    assert put_part(tampered, b"y").status_code == 403


def test_someone_elses_direct_upload_is_404_and_tus_chunks_are_refused(api: Api) -> None:
    created = create_direct(api, 100)
    other = Api(api.client)
    other.signup()
    for path in ("parts", "complete"):
        r = other.client.post(f"/api/uploads/{created['upload']}/{path}", headers=other.auth)
        assert (r.status_code, r.json()) == (404, {"message": "upload not found"})
    r = api.client.patch(str(created["location"]), content=b"x" * 100, headers={
        **api.auth, "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 409 and "URLs it was given" in r.json()["message"]


def test_direct_transfers_need_s3_and_are_off_by_default(make_settings: MakeSettings) -> None:
    with pytest.raises(ValueError, match="VIDCONV_STORAGE=s3"):
        open_client(make_settings({"VIDCONV_DIRECT_TRANSFERS": "on"}))
    with open_client(make_settings()) as plain:
        a = Api(plain)
        a.signup()
        r = a.client.post("/api/uploads/", headers=a.auth, json={"direct": True, "length": 10})
        assert r.status_code == 415 and "direct transfers are off" in r.json()["message"]
