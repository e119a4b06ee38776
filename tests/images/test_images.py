"""The three images, built from their Dockerfiles unchanged and run by runc as a pod's container
is: their own non-root user, a read-only root filesystem, a writable scratch, no capabilities."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.images.oci import Image, Mount, Runtime
from tests.media import ffprobe, streams
from vidconv.contract import EXIT_BAD_INPUT, EXIT_OK, Result, parse_line
from vidconv.transcoder.report import compact_result

pytestmark = pytest.mark.images
Clip = Callable[..., Path]
# Where each image may write (the chart mounts an emptyDir there); the rest is read-only.
SCRATCH = {"api": "/tmp", "operator": "/tmp", "transcoder": "/scratch"}
HELP = {"api": ["vidconv", "serve", "--help"], "operator": ["vidconv", "operator", "--help"],
        "transcoder": None}  # the transcoder's entrypoint takes the arguments itself


@pytest.mark.parametrize("component", ["api", "operator", "transcoder"])
def test_each_image_runs_as_its_own_user_on_a_read_only_root(
    component: str, images: dict[str, Image], runtime: Runtime
) -> None:
    image = images[component]
    assert image.user == (10001, 10001)
    scratch = SCRATCH[component]
    script = (f"id -u; id -g; touch /opt/vidconv/x 2>&1; touch {scratch}/x && echo writable; "
              "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")
    done = runtime.run(runtime.container(image, ["-c", script], command=["sh"],
                                         mounts=[Mount(scratch)]))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["10001", "10001"]
    assert "Read-only file system" in lines[2]
    assert lines[3] == "writable"
    assert sorted(line.split() for line in lines[4:]) == [
        ["CapEff:", "0000000000000000"], ["NoNewPrivs:", "1"]]


@pytest.mark.parametrize("component", ["api", "operator", "transcoder"])
def test_each_entrypoint_answers_help(
    component: str, images: dict[str, Image], runtime: Runtime
) -> None:
    image = images[component]
    done = runtime.run(runtime.container(image, HELP[component] or ["--help"],
                                         mounts=[Mount(SCRATCH[component])]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: "), done.stdout


def _transcode(image: Image, runtime: Runtime, tmp_path: Path, clip: Path,
               fmt: str) -> tuple[int, list[str], str, Path]:
    """The transcoder image run as its Job's pod runs it: the input read-only, an output volume,
    the emptyDir scratch and the termination-log file."""
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    os.chown(outputs, *image.user)
    (inputs / clip.name).write_bytes(clip.read_bytes())
    termination = tmp_path / "termination-log"
    termination.touch()
    os.chown(termination, *image.user)
    out = f"/output/{clip.stem}.{fmt}"
    container = runtime.container(
        image, ["--input", f"/input/{clip.name}", "--output", out, "--format", fmt],
        mounts=[Mount("/scratch"), Mount("/input", inputs, readonly=True),
                Mount("/output", outputs), Mount("/dev/termination-log", termination)])
    done = runtime.run(container, timeout=180)
    return (done.returncode, done.stdout.splitlines(), termination.read_text(),
            outputs / Path(out).name)


def test_the_transcoder_image_converts_a_clip_through_its_contract(
    images: dict[str, Image], runtime: Runtime, make_clip: Clip, tmp_path: Path
) -> None:
    code, stdout, termination, output = _transcode(
        images["transcoder"], runtime, tmp_path, make_clip(2.0), "webm")
    assert code == EXIT_OK, stdout
    result = parse_line(stdout[-1])
    assert isinstance(result, Result) and result.ok, stdout[-1]
    assert (result.format, result.video_codec, result.audio_codec) == ("webm", "vp9", "opus")
    assert result.ffmpeg == "/usr/bin/ffmpeg"  # Debian's, from the image
    assert result.size == output.stat().st_size
    # The pod's termination message is the same result, compacted to fit Kubernetes' limit.
    assert termination.encode() == compact_result(json.loads(stdout[-1]))
    info = ffprobe(output)
    assert [s["codec_name"] for s in streams(info, "video")] == ["vp9"]
    assert [s["codec_name"] for s in streams(info, "audio")] == ["opus"]
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.2)


def test_the_transcoder_image_exits_2_for_an_input_it_cannot_convert(
    images: dict[str, Image], runtime: Runtime, tmp_path: Path
) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n" * 100)
    code, stdout, termination, output = _transcode(
        images["transcoder"], runtime, tmp_path, fake, "webm")
    assert code == EXIT_BAD_INPUT, stdout
    result = Result.from_json(json.loads(termination))
    assert not result.ok and result.code and result.error
    assert not output.exists()


def test_the_transcoder_image_holds_no_starlette_or_sqlalchemy(
    images: dict[str, Image], runtime: Runtime
) -> None:
    code = ("import importlib.util as u, vidconv.transcoder.cli; "
            "print([m for m in ('starlette', 'sqlalchemy', 'alembic', 'uvicorn', 'kopf', "
            "'psycopg', 'kubernetes') if u.find_spec(m)])")
    done = runtime.run(runtime.container(images["transcoder"], ["-c", code],
                                         command=["python"], mounts=[Mount("/scratch")]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_api_image_serves_healthz(
    images: dict[str, Image], runtime: Runtime, tmp_path: Path
) -> None:
    # The embedded mode (SQLite and files under the /tmp emptyDir): only the image is tested.
    port = servers.free_port()
    container = runtime.container(images["api"], env={
        "VIDCONV_HOST": "127.0.0.1", "VIDCONV_PORT": str(port),
        "VIDCONV_DATA_DIR": "/tmp/vidconv"}, mounts=[Mount("/tmp")])
    log = tmp_path / "api.log"
    with runtime.started(container, log) as proc:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert r.status_code == 200, r.text
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
