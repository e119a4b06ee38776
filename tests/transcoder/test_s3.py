"""Input from and output to a real S3 server (MinIO over HTTP), as in a Kubernetes Job."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from minio.error import S3Error

from tests import servers
from tests.media import ffprobe, streams
from tests.servers import free_port
from tests.transcoder.helpers import transcode
from vidconv.settings import Settings
from vidconv.storage import PART_SIZE, S3Storage

pytestmark = pytest.mark.s3


def large_clip(make_clip: Callable[..., Path]) -> Path:
    """24 s of 720p that the avi profile at quality=100 turns into ~34 MiB: three 16 MiB parts."""
    return make_clip(24.0, 1280, 720, extra=("-c:v", "mpeg4", "-q:v", "4"))


@pytest.fixture
def small_minio(tmp_path: Path) -> Iterator[servers.MinioServer]:
    """A MinIO of its own whose data dir is a 24 MiB tmpfs: room for one part, not for two."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "vidconv-test", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        servers.unavailable("s3", f"a small disk for MinIO needs a tmpfs mount (as root): "
                                  f"{mounted.stderr.strip()}")
    try:
        with servers.running("s3", servers.minio_server(disk / "data")) as server:
            yield server
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], capture_output=True)


def test_s3_in_and_out(s3_env: dict[str, str], make_clip: Callable[..., Path],
                       tmp_path: Path, env: dict[str, str]) -> None:
    storage = S3Storage(Settings.from_env(s3_env))
    storage.put_file("inputs/t1/clip.mp4", make_clip(seconds=2.0))
    bucket = s3_env["VIDCONV_S3_BUCKET"]
    run = transcode(f"s3://{bucket}/inputs/t1/clip.mp4", f"s3://{bucket}/outputs/t1/clip.webm",
                    "webm", "max_height=120", env={**env, **s3_env})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.result["output"] == f"s3://{bucket}/outputs/t1/clip.webm"
    assert run.result["size"] == storage.size("outputs/t1/clip.webm")
    local = tmp_path / "back.webm"
    storage.get_file("outputs/t1/clip.webm", local)
    info = ffprobe(local)
    assert [s["codec_name"] for s in streams(info, "video")] == ["vp9"]
    assert streams(info, "video")[0]["height"] == 120
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.2)


def test_missing_object_is_permanent(s3_env: dict[str, str], env: dict[str, str]) -> None:
    bucket = s3_env["VIDCONV_S3_BUCKET"]
    run = transcode(f"s3://{bucket}/inputs/none/x.mp4", f"s3://{bucket}/outputs/none/x.mp4",
                    "mp4", env={**env, **s3_env})
    assert run.returncode == 2 and run.result["code"] == "input_not_found"


def test_unreachable_s3_is_retryable(s3_env: dict[str, str], make_clip: Callable[..., Path],
                                     tmp_path: Path, env: dict[str, str]) -> None:
    dead = {**s3_env, "VIDCONV_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    bucket = s3_env["VIDCONV_S3_BUCKET"]
    run = transcode(f"s3://{bucket}/inputs/t/x.mp4", str(tmp_path / "o.mp4"), "mp4",
                    env={**env, **dead}, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.result["code"] == "storage_unavailable"
    assert "Could not download the input" in run.result["error"]

    # Same when only the upload fails: converted fine, storage gone.
    run = transcode(make_clip(seconds=1.0), f"s3://{bucket}/outputs/t/x.mp4", "mp4",
                    env={**env, **dead}, timeout=60)
    assert run.returncode == 1 and run.result["code"] == "storage_unavailable"
    assert "Could not upload the output" in run.result["error"]


def test_a_large_output_goes_up_in_parts_and_lands_whole(
    s3: servers.S3Server, s3_env: dict[str, str], make_clip: Callable[..., Path],
    tmp_path: Path, env: dict[str, str],
) -> None:
    bucket = s3_env["VIDCONV_S3_BUCKET"]
    run = transcode(large_clip(make_clip), f"s3://{bucket}/outputs/big/clip.avi", "avi",
                    "quality=100", env={**env, **s3_env})
    assert run.returncode == 0, run.stdout + run.stderr
    client = s3.client()
    stat = client.stat_object(bucket, "outputs/big/clip.avi")
    assert stat.size == run.result["size"] > 2 * PART_SIZE
    back = tmp_path / "back.avi"
    client.fget_object(bucket, "outputs/big/clip.avi", str(back))
    # The server's ETag is the multipart one, and the downloaded bytes give the same: every
    # part arrived whole and in order.
    assert stat.etag == servers.multipart_etag(back, PART_SIZE)
    assert stat.etag.endswith("-3")
    info = ffprobe(back)
    assert float(info["format"]["duration"]) == pytest.approx(24.0, abs=0.2)
    assert [s["codec_name"] for s in streams(info, "video")] == ["mpeg4"]


def test_an_output_larger_than_the_free_space_fails_retryable_and_leaves_nothing(
    small_minio: servers.MinioServer, make_clip: Callable[..., Path], env: dict[str, str],
) -> None:
    client = small_minio.client()
    client.make_bucket("small")
    run = transcode(large_clip(make_clip), "s3://small/outputs/big/clip.avi", "avi",
                    "quality=100", env={**env, **small_minio.env("small")})
    assert run.returncode == 1, run.stdout + run.stderr  # retryable: another node may have room
    assert run.result["code"] == "storage_unavailable"
    assert "Could not upload the output" in run.result["error"]
    assert "XMinioStorageFull" in run.result["error"], run.result
    assert "free drive" in run.result["error"]
    # No object, no unfinished upload holding the parts that did fit, and their room is free
    # again: an object of a part's size goes in.
    with pytest.raises(S3Error) as missing:
        client.stat_object("small", "outputs/big/clip.avi")
    assert missing.value.code == "NoSuchKey"
    assert list(client.list_objects("small", recursive=True)) == []
    assert client._list_multipart_uploads("small", prefix="outputs/").uploads == []
    client.put_object("small", "after", io.BytesIO(bytes(PART_SIZE)), PART_SIZE)
