"""Hostile or unacceptable inputs end with exit 2 and one clear sentence, and nothing leaks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ffmpeg_path
from tests.transcoder.helpers import Run, transcode


def assert_permanent(run: Run, code: str, words: str, out: Path) -> None:
    assert run.returncode == 2, run.stdout + run.stderr
    result = run.result
    assert result["event"] == "result" and result["status"] == "error"
    assert result["code"] == code, result
    assert words in result["error"]
    assert not out.exists() and not out.with_name(out.name + ".part").exists()


def test_text_file_named_mp4(tmp_path: Path, env: dict[str, str]) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video, just some text\n" * 20)
    out = tmp_path / "o.webm"
    assert_permanent(transcode(fake, out, "webm", env=env), "unsupported_container",
                     "not a video", out)


def test_truncated_mp4(make_clip: Callable[..., Path], tmp_path: Path,
                       env: dict[str, str]) -> None:
    data = make_clip(seconds=2.0).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o.mp4"
    assert_permanent(transcode(cut, out, "mp4", env=env), "invalid_input", "truncated", out)


def test_truncated_faststart_mp4_is_caught_after_decoding(
        make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    # With the index first, the header probes fine; only the decoded length reveals the damage.
    data = make_clip(seconds=3.0, extra=("-movflags", "+faststart")).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    out = tmp_path / "o.mp4"
    assert_permanent(transcode(cut, out, "mp4", env=env), "truncated_input", "truncated", out)


def test_codec_outside_the_allow_list(make_clip: Callable[..., Path], tmp_path: Path,
                                      env: dict[str, str]) -> None:
    # Snow: ffmpeg's experimental wavelet codec, which no camera or editor writes.
    clip = make_clip(seconds=1.0, ext="mkv", audio=False, extra=("-c:v", "snow"))
    out = tmp_path / "o.mp4"
    assert_permanent(transcode(clip, out, "mp4", env=env), "unsupported_codec",
                     "video codec snow is not supported", out)


def test_unknown_format(make_clip: Callable[..., Path], tmp_path: Path,
                        env: dict[str, str]) -> None:
    out = tmp_path / "o.flv"
    assert_permanent(transcode(make_clip(), out, "flv", env=env), "unsupported_format",
                     "'flv' is not supported", out)


@pytest.mark.parametrize(("option", "words"), [
    ("max_height=10", "max_height must be at least 16"),
    ("quality=500", "quality must be at most 100"),
    ("sharpness=3", "Unknown option 'sharpness'"),
    ("max_height", "not KEY=VALUE"),
])
def test_bad_option(option: str, words: str, make_clip: Callable[..., Path], tmp_path: Path,
                    env: dict[str, str]) -> None:
    out = tmp_path / "o.mp4"
    assert_permanent(transcode(make_clip(), out, "mp4", option, env=env), "invalid_option",
                     words, out)


def test_start_after_the_end(make_clip: Callable[..., Path], tmp_path: Path,
                             env: dict[str, str]) -> None:
    out = tmp_path / "o.mp4"
    assert_permanent(transcode(make_clip(seconds=1.0), out, "mp4", "start=5", env=env),
                     "invalid_option", "after the input's end", out)


@pytest.mark.parametrize(("limit", "code"), [
    ({"VIDCONV_MAX_INPUT_BYTES": "1000"}, "input_too_large"),
    ({"VIDCONV_MAX_DURATION_SECONDS": "1"}, "too_long"),
    ({"VIDCONV_MAX_HEIGHT": "200"}, "resolution_too_large"),
])
def test_bounds_from_settings(limit: dict[str, str], code: str, make_clip: Callable[..., Path],
                              tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "o.mp4"
    assert_permanent(transcode(make_clip(seconds=2.0), out, "mp4", env={**env, **limit}),
                     code, "limit", out)


def test_missing_input(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "o.mp4"
    assert_permanent(transcode(tmp_path / "nope.mp4", out, "mp4", env=env), "input_not_found",
                     "does not exist", out)


def test_usage_error_still_ends_with_a_result_line(tmp_path: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vidconv.transcoder", "--input", "x"],
        env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert '"code":"usage"' in proc.stdout.splitlines()[-1]


SECRET = b"TOPSECRET-4f9c2e password=hunter2\n"


def _playlist(secret: Path) -> bytes:
    return (b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n"
            + f"file://{secret}\n".encode() + b"#EXT-X-ENDLIST\n")


def _naive_ffmpeg_opens(evil: Path, secret: Path, tmp_path: Path) -> bool:
    """Does plain ``ffmpeg -i evil.avi`` (no safeguards) go and open the secret file?"""
    proc = subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "debug", "-i", str(evil),
                           "-y", str(tmp_path / "naive.mp4")], capture_output=True, text=True)
    return f"Opening 'file://{secret}' for reading" in proc.stderr


@pytest.mark.parametrize("wrapped_in_avi_header", [False, True])
def test_hls_playlist_disguised_as_avi_cannot_read_local_files(
        wrapped_in_avi_header: bool, tmp_path: Path, env: dict[str, str]) -> None:
    secret = tmp_path / "secret.ts"  # a segment extension ffmpeg's HLS demuxer accepts
    secret.write_bytes(SECRET)
    evil = tmp_path / "evil.avi"
    header = b"RIFF\x00\x10\x00\x00AVI LIST" if wrapped_in_avi_header else b""
    evil.write_bytes(header + _playlist(secret))
    if not wrapped_in_avi_header:
        # The attack is real: ffmpeg left to guess picks its HLS demuxer and reads the file.
        assert _naive_ffmpeg_opens(evil, secret, tmp_path)
    out = tmp_path / "o.mp4"
    run = transcode(evil, out, "mp4", env={**env, "VIDCONV_LOG_LEVEL": "debug"})
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.result["code"] in ("unsupported_container", "invalid_input", "no_streams")
    assert not out.exists()
    assert SECRET.strip().decode() not in run.stdout + run.stderr
    assert str(secret) not in run.stderr  # no demuxer ever got to open it


def test_ffprobe_absent_probe_also_refuses_garbage(tmp_path: Path, env: dict[str, str]) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    fake = tmp_path / "fake.mkv"
    fake.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00garbage" * 100)  # matroska magic, then junk
    out = tmp_path / "o.mp4"
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    run = transcode(fake, out, "mp4", env={**env, "VIDCONV_FFMPEG": exe})
    assert_permanent(run, "invalid_input", "not a readable video", out)


def test_input_hiding_its_length_is_still_cut_at_the_maximum(
        tmp_path: Path, env: dict[str, str]) -> None:
    # Matroska written to a pipe has no duration in its header: the length check can't see it.
    clip = tmp_path / "noduration.mkv"
    with clip.open("wb") as f:
        subprocess.run([ffmpeg_path(), "-v", "error", "-f", "lavfi",
                        "-i", "testsrc2=size=320x240:rate=30:duration=3", "-c:v", "mjpeg",
                        "-f", "matroska", "pipe:1"], stdout=f, check=True)
    out = tmp_path / "o.mp4"
    run = transcode(clip, out, "mp4", env={**env, "VIDCONV_MAX_DURATION_SECONDS": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.result["duration"] == pytest.approx(1.0, abs=0.1)
