"""A real tus client (tuspy) against real `vidconv serve` processes, through a proxy that cuts
the connection twice mid-upload: the upload resumes from the server's offset, arrives whole,
and converts. Local storage with one server; S3 (MinIO over HTTP) and PostgreSQL with two API
replicas behind the proxy, each connection to the next one, so consecutive chunks (and the
resumptions) land on different replicas.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from tusclient.client import TusClient

from tests.api.helpers import PASSWORD
from tests.api.proxy import CuttingProxy
from tests.media import ffprobe, streams
from tests.servers import S3Server, free_port, wait_for_port

MiB = 1024 * 1024
CHUNK = 32 * MiB  # tuspy's chunk: one PATCH each
SIZE = 200 * 1000 * 1000
CUTS = [80 * MiB, 150 * MiB]  # each in the middle of a chunk (64-96 MiB, 128-160 MiB)

Clip = Callable[..., Path]


@pytest.fixture(scope="module")
def big_video(make_clip: Clip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200 MB MP4 that converts in seconds: a 2 s clip, then a top-level `free` box of
    random bytes that every player skips (and that shows any byte out of place)."""
    clip = make_clip(2.0)
    path = tmp_path_factory.mktemp("big") / "big video.mp4"
    pad = SIZE - clip.stat().st_size
    with path.open("wb") as out:
        out.write(clip.read_bytes())
        out.write(struct.pack(">I4s", pad, b"free"))
        left = pad - 8
        while left:
            n = min(left, 8 * MiB)
            out.write(os.urandom(n))
            left -= n
    assert path.stat().st_size == SIZE
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def serve(data: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    full = {**os.environ, "VIDCONV_PORT": str(port), "VIDCONV_DATA_DIR": str(data),
            "VIDCONV_WORKERS": "1", "VIDCONV_LOG_LEVEL": "warning",
            "VIDCONV_JWT_SECRET": "resumable-uploads-test-secret-of-32-bytes-or-more",
            "VIDCONV_MAX_UPLOAD_BYTES": str(300 * 1000 * 1000), **env}
    log = (data.parent / f"server-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "vidconv.cli", "serve"], env=full,
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    text = (data.parent / f"server-{port}.log").read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]


def login(url: str) -> dict[str, str]:
    with httpx.Client(base_url=url, timeout=30) as http:
        body = {"username": "ana", "email": "ana@example.com", "password1": PASSWORD,
                "password2": PASSWORD}
        r = http.post("/api/auth/signup", json=body)
        assert r.status_code in (201, 409), r.text
        r = http.post("/api/auth/login", json={"username": "ana", "password": PASSWORD})
        return {"Authorization": f"Bearer {r.json()['token']}"}


def upload_through_cuts(urls: list[str], video: Path, auth: dict[str, str]) -> str:
    """tuspy through the cutting proxy; the upload id. Asserts how it resumed."""
    ports = [int(u.rsplit(":", 1)[1]) for u in urls]
    with CuttingProxy(ports, cut_at=list(CUTS)) as proxy:
        client = TusClient(f"http://127.0.0.1:{proxy.port}/api/uploads/", headers=auth)
        uploader = client.uploader(str(video), chunk_size=CHUNK, retries=5, retry_delay=0.5,
                                   metadata={"filename": video.name})
        uploader.upload()
    patches = [r for r in proxy.requests if r.method == "PATCH"]
    offsets = [r.offset for r in patches]
    assert offsets[:3] == [0, CHUNK, 2 * CHUNK]
    assert len(proxy.cut) == 2 and all(r.method == "PATCH" for r in proxy.cut)
    for cut, request in zip(CUTS, proxy.cut, strict=True):
        # The client went on from where the server said the upload stands (HEAD): past the
        # cut chunk's start (what arrived of it was kept), at most at the cut.
        later = [r.offset or 0 for r in patches[patches.index(request) + 1:]]
        assert request.offset is not None
        assert any(request.offset < o <= cut for o in later), (cut, offsets)
    assert [r.method for r in proxy.requests].count("HEAD") >= 2
    assert offsets == sorted(offsets)  # never back to an earlier offset
    # Nothing was sent twice but what the cuts caught in flight.
    assert proxy.sent - SIZE < 2 * 16 * MiB, proxy.sent
    if len(ports) > 1:
        assert {r.upstream for r in patches} == set(ports)
    return str(uploader.url).rsplit("/", 1)[1]


def convert(url: str, auth: dict[str, str], upload_id: str, tmp: Path) -> dict[str, object]:
    with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
        r = http.post("/api/tasks", json={"upload": upload_id, "conversion_type": "webm"})
        assert r.status_code == 201, r.text
        task_id = r.json()["task_id"]
        for _ in range(600):
            task = http.get(f"/api/tasks/{task_id}").json()
            if task["state"] in ("SUCCESS", "FAILURE"):
                break
            threading.Event().wait(0.2)
        assert task["state"] == "SUCCESS", task
        assert (task["file_name"], task["input_size"]) == ("big_video.mp4", SIZE)
        out = tmp / "out.webm"
        with http.stream("GET", "/api/download", params={"task_id": task_id}) as r:
            assert r.status_code == 200
            with out.open("wb") as f:
                for block in r.iter_bytes():
                    f.write(block)
        info = ffprobe(out)
        assert [s["codec_name"] for s in streams(info, "video")] == ["vp9"]
        assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.2)
        return task


def test_a_cut_upload_resumes_and_converts_on_local_storage(
    big_video: Path, tmp_path: Path
) -> None:
    data = tmp_path / "var"
    with serve(data, {}) as url:
        auth = login(url)
        upload_id = upload_through_cuts([url], big_video, auth)
        task = convert(url, auth, upload_id, tmp_path)
        stored = data / "objects" / "inputs" / str(task["task_id"]) / "big_video.mp4"
        assert sha256(stored) == sha256(big_video)
        assert not list((data / "uploads").iterdir())  # the partial file became the input


@pytest.mark.postgres
@pytest.mark.s3
def test_a_cut_upload_resumes_across_two_replicas_on_s3(
    big_video: Path, tmp_path: Path, s3: S3Server, s3_env: dict[str, str], pg_url: str
) -> None:
    env = {**s3_env, "VIDCONV_DATABASE_URL": pg_url}
    with ExitStack() as stack:
        urls = [stack.enter_context(serve(tmp_path / f"var{i}", env)) for i in range(2)]
        auth = login(urls[0])
        upload_id = upload_through_cuts(urls, big_video, auth)
        task = convert(urls[0], auth, upload_id, tmp_path)
    bucket = s3_env["VIDCONV_S3_BUCKET"]
    key = f"inputs/{task['task_id']}/big_video.mp4"
    copy = tmp_path / "stored.mp4"
    s3.client().fget_object(bucket, key, str(copy))
    assert sha256(copy) == sha256(big_video)
    # The kept-aside tails are gone once they were joined into parts.
    assert [o.object_name for o in s3.client().list_objects(bucket, "uploads/",
                                                             recursive=True)] == []


@pytest.mark.postgres
@pytest.mark.s3
def test_two_chunks_at_once_on_two_replicas_one_is_refused_and_nothing_mixes(
    tmp_path: Path, s3: S3Server, s3_env: dict[str, str], pg_url: str
) -> None:
    env = {**s3_env, "VIDCONV_DATABASE_URL": pg_url}
    length = 20 * MiB
    with ExitStack() as stack:
        first, second = (stack.enter_context(serve(tmp_path / f"var{i}", env)) for i in range(2))
        auth = login(first)
        tus = {**auth, "Tus-Resumable": "1.0.0"}
        chunk = {**tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        r = httpx.post(first + "/api/uploads/", headers={**tus, "Upload-Length": str(length)})
        location = r.headers["location"]
        go_on = threading.Event()

        def slow() -> Iterator[bytes]:  # 9 MiB (a part and a bit), then the rest when told
            yield b"A" * (9 * MiB)
            go_on.wait(60)
            yield b"A" * (length - 9 * MiB)

        answers: list[httpx.Response] = []
        writer = threading.Thread(target=lambda: answers.append(httpx.patch(
            first + location, content=slow(), headers=chunk, timeout=60)))
        writer.start()
        engine = create_engine(pg_url)
        try:
            for _ in range(300):  # until the first request holds the upload's lease
                with engine.connect() as db:
                    if db.execute(text("SELECT lock_token FROM uploads")).scalar():
                        break
                threading.Event().wait(0.1)
            r = httpx.patch(second + location, content=b"B" * length, headers=chunk, timeout=60)
            assert r.status_code == 409 and "another request" in r.json()["message"]
            go_on.set()
            writer.join(60)
            [done] = answers
            assert (done.status_code, done.headers["upload-offset"]) == (204, str(length))
            with engine.connect() as db:
                key = db.execute(text("SELECT storage_key FROM uploads")).scalar()
        finally:
            go_on.set()
            engine.dispose()
    stored = s3.client().get_object(s3_env["VIDCONV_S3_BUCKET"], str(key)).read()
    assert stored == b"A" * length
