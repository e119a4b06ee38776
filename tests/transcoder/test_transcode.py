"""Each format converts real clips with real ffmpeg: promised container, codecs, length, size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.media import ffprobe, streams
from tests.transcoder.helpers import PROMISED, transcode


@pytest.mark.parametrize("fmt", sorted(PROMISED))
def test_output_is_the_promised_container_codecs_length_and_height(
        fmt: str, make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    clip = make_clip(seconds=2.0)
    out = tmp_path / f"out.{fmt}"
    container, vcodec, acodec = PROMISED[fmt]
    options = () if vcodec is None else ("max_height=120",)
    run = transcode(clip, out, fmt, *options, env=env)
    assert run.returncode == 0, run.stdout + run.stderr

    info = ffprobe(out)
    assert info["format"]["format_name"] == container
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.2)
    video, audio = streams(info, "video"), streams(info, "audio")
    assert [s["codec_name"] for s in audio] == [acodec]
    if vcodec is None:
        assert video == []
    else:
        assert [s["codec_name"] for s in video] == [vcodec]
        assert (video[0]["width"], video[0]["height"]) == (160, 120)  # 4:3 kept, even sides

    result = run.result
    assert result["event"] == "result" and result["status"] == "ok"
    assert result["output"] == str(out) and result["size"] == out.stat().st_size
    assert (result["format"], result["video_codec"], result["audio_codec"]) == (fmt, vcodec, acodec)
    assert result["duration"] == pytest.approx(float(info["format"]["duration"]), abs=0.05)
    assert result["input_duration"] == pytest.approx(2.0, abs=0.1)
    assert result["command"][0] == result["ffmpeg"] and "-protocol_whitelist" in result["command"]
    assert run.progress[-1] == 100 and run.progress == sorted(run.progress)
    assert all(0 <= p <= 100 for p in run.progress)


def test_container_flavours_mp4_vs_mov_webm_vs_mkv_and_faststart(
        make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    clip = make_clip(seconds=1.0)
    heads = {}
    for fmt in ("mp4", "mov", "webm", "mkv"):
        out = tmp_path / f"o.{fmt}"
        assert transcode(clip, out, fmt, env=env).returncode == 0
        heads[fmt] = out.read_bytes()
    assert heads["mp4"][8:12] == b"isom" and heads["mov"][8:12] == b"qt  "
    # faststart: the index (moov) comes before the media data, so players start at once.
    for fmt in ("mp4", "mov"):
        assert heads[fmt].index(b"moov") < heads[fmt].index(b"mdat")
    assert b"webm" in heads["webm"][:64] and b"matroska" in heads["mkv"][:64]


def test_start_and_duration_trim_and_audio_off(
        make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    clip = make_clip(seconds=3.0, extra=("-metadata", "title=private-title"))
    assert "private-title" in str(ffprobe(clip)["format"].get("tags"))
    out = tmp_path / "trim.mp4"
    run = transcode(clip, out, "mp4", "start=0.5", "duration=1.5", "audio=false", env=env)
    assert run.returncode == 0, run.stderr
    info = ffprobe(out)
    assert float(info["format"]["duration"]) == pytest.approx(1.5, abs=0.2)
    assert streams(info, "audio") == [] and run.result["audio_codec"] is None
    assert "private-title" not in str(info)  # the input's metadata is not carried over
    assert run.progress[-1] == 100


def test_bitrate_option_and_silent_input(
        make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    clip = make_clip(seconds=1.0, audio=False, ext="mkv")
    out = tmp_path / "b.webm"
    run = transcode(clip, out, "webm", "video_bitrate=300", env=env)
    assert run.returncode == 0, run.stderr
    assert run.result["audio_codec"] is None and streams(ffprobe(out), "audio") == []
    assert "300k" in run.result["command"]


def test_the_pip_static_ffmpeg_without_ffprobe_works_too(
        make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    assert not Path(exe).with_name("ffprobe").exists()  # so the ffmpeg -i probe is exercised
    clip = make_clip(seconds=2.0, ext="avi", extra=("-c:v", "mpeg4", "-c:a", "libmp3lame"))
    out = tmp_path / "s.mp4"
    run = transcode(clip, out, "mp4", "max_height=120", env={**env, "VIDCONV_FFMPEG": exe})
    assert run.returncode == 0, run.stderr
    assert run.result["ffmpeg"] == exe and run.result["ffmpeg_source"] == "VIDCONV_FFMPEG"
    assert (run.result["video_codec"], run.result["audio_codec"]) == ("h264", "aac")
    assert run.result["duration"] == pytest.approx(2.0, abs=0.2)
    assert f"ffmpeg {exe} (from VIDCONV_FFMPEG)" in run.stderr  # the logs say which ffmpeg
