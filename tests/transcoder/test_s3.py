"""Input from and output to a real S3 server (moto over HTTP), as in a Kubernetes Job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.media import ffprobe, streams
from tests.servers import free_port
from tests.transcoder.helpers import transcode
from vidconv.settings import Settings
from vidconv.storage import S3Storage

pytestmark = pytest.mark.s3


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
