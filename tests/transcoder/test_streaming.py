"""The adaptive stream the transcoder packages: the ladder for the input, aligned keyframes, the
playlists a player reads, and the package in S3 as a Kubernetes Job leaves it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import m3u8
import pytest

from tests.media import ffprobe, streams
from tests.transcoder.helpers import transcode
from vidconv.settings import Settings
from vidconv.storage import S3Storage

Clip = Callable[..., Path]


def keyframes(path: Path) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=pts_time,flags", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    times = [float(t) for t, flags in (line.split(",")[:2] for line in out.split()) if "K" in flags]
    return [round(t - times[0], 2) for t in times]  # from the first frame (B-frames delay it)


def peak_and_mean(media: m3u8.M3U8) -> tuple[float, float]:
    rates = [(int(s.byterange.split("@")[0]) * 8, s.duration) for s in media.segments]
    return max(b / d for b, d in rates), sum(b for b, _ in rates) / sum(d for _, d in rates)


def test_a_ladder_of_aligned_renditions_under_one_master(
        make_clip: Clip, tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "out"
    run = transcode(make_clip(seconds=9.0, width=854, height=480, fps=25),
                    out / "master.m3u8", "hls", env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "360p.m3u8", "360p.mp4", "480p.m3u8", "480p.mp4", "audio.m3u8", "audio.mp4",
        "master.m3u8"]
    result = run.result
    assert (result["format"], result["video_codec"], result["audio_codec"]) == ("hls", "h264",
                                                                                "aac")
    assert result["duration"] == pytest.approx(9.0, abs=0.1)
    assert result["size"] == sum(p.stat().st_size for p in out.iterdir())

    master = m3u8.load(str(out / "master.m3u8"))
    assert [(p.stream_info.resolution, p.uri) for p in master.playlists] == [
        ((854, 480), "480p.m3u8"), ((640, 360), "360p.m3u8")]  # no audio-only variant
    assert all(p.stream_info.codecs.split(",")[1] == "mp4a.40.2" for p in master.playlists)
    [audio] = master.media
    assert (audio.type, audio.uri) == ("AUDIO", "audio.m3u8")
    # BANDWIDTH is the peak a player meets (its video's fullest segment plus the audio's),
    # AVERAGE-BANDWIDTH the mean: measured here from the playlists' byte ranges.
    sound = [peak_and_mean(m3u8.load(str(out / "audio.m3u8")))]
    for variant in master.playlists:
        peak, mean = peak_and_mean(m3u8.load(str(out / variant.uri)))
        assert variant.stream_info.bandwidth == pytest.approx(peak + sound[0][0], abs=2)
        assert variant.stream_info.average_bandwidth == pytest.approx(mean + sound[0][1], abs=2)
        assert variant.stream_info.average_bandwidth <= variant.stream_info.bandwidth

    aligned = None
    for height in (480, 360):
        rendition = out / f"{height}p.mp4"
        [video] = streams(ffprobe(rendition), "video")
        assert (video["codec_name"], video["height"]) == ("h264", height)
        media = m3u8.load(str(out / f"{height}p.m3u8"))
        assert [round(s.duration, 1) for s in media.segments] == [4.0, 4.0, 1.0]
        assert media.segment_map[0].uri == f"{height}p.mp4"
        assert all(s.uri == f"{height}p.mp4" and s.byterange for s in media.segments)
        found = keyframes(rendition)
        assert {0.0, 4.0, 8.0} <= set(found)
        aligned = aligned or found
        assert found == aligned  # the same instants in every rendition


@pytest.mark.parametrize(("size", "options", "heights"), [
    ((320, 240), (), [240]),  # smaller than the ladder: one rendition at its own height
    ((1280, 720), ("max_height=480", "audio=false"), [480, 360]),
])
def test_the_ladder_never_climbs_above_the_input_or_max_height(
        size: tuple[int, int], options: tuple[str, ...], heights: list[int], make_clip: Clip,
        tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "out"
    run = transcode(make_clip(seconds=2.0, width=size[0], height=size[1]),
                    out / "master.m3u8", "hls", *options, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    master = m3u8.load(str(out / "master.m3u8"))
    assert [p.stream_info.resolution[1] for p in master.playlists] == heights
    assert bool(master.media) == ("audio=false" not in options)
    assert run.result["audio_codec"] == (None if "audio=false" in options else "aac")


@pytest.mark.s3
def test_the_package_lands_under_the_tasks_prefix_in_s3(
        s3_env: dict[str, str], make_clip: Clip, env: dict[str, str]) -> None:
    storage = S3Storage(Settings.from_env(s3_env))
    storage.put_file("inputs/t9/clip.mp4", make_clip(seconds=2.0))
    bucket = s3_env["VIDCONV_S3_BUCKET"]
    run = transcode(f"s3://{bucket}/inputs/t9/clip.mp4", f"s3://{bucket}/outputs/t9/master.m3u8",
                    "hls", "sprites=true", env={**env, **s3_env})
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    stored = dict(storage.entries("outputs/t9/"))
    assert sorted(stored) == [f"outputs/t9/{n}" for n in (
        "240p.m3u8", "240p.mp4", "audio.m3u8", "audio.mp4", "master.m3u8", "sprites.jpg",
        "sprites.vtt")]
    assert run.result["size"] == sum(stored.values())
    assert run.result["output"] == f"s3://{bucket}/outputs/t9/master.m3u8"
