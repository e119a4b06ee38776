"""Every kind of file people upload converts into every target, as long as the input.

Each family (tests/transcoder/families.py) goes into each video format (and mp3 where it has
sound) through ``python -m vidconv.transcoder``; the output is what a player sees: the promised
container and codecs, the input's length within 0.2 s, upright, even-sided 8-bit 4:2:0 video,
surround kept where the target carries it, a sample rate the target takes, text subtitles
where the container has them, and both streams starting and ending together.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.media import ffprobe, streams
from tests.transcoder.families import AUDIO_FAMILIES, VIDEO_FAMILIES, Family, make
from tests.transcoder.helpers import PROMISED, VIDEO_FORMATS, Run, transcode, transcoder_env

SURROUND = {"mp4", "mkv", "mov", "webm", "av1"}  # AAC, Opus (mapping family 1): 5.1 / 7.1
SUBTITLES = {"mp4": "mov_text", "mov": "mov_text", "mkv": "subrip", "webm": "webvtt",
             "av1": "mov_text"}
HIRES = {"mp4", "mkv", "mov", "av1"}  # AAC takes 88.2/96 kHz; Opus, MP3, MP2, WMA stop at 48
# The AV1 target (slower to start) gets the families whose traits reach the encoder.
AV1_FAMILIES = {"broadcast-ts", "prores-mov", "animated-webp", "phone-mp4", "subtitled-mkv"}
# What rates below 48 kHz become: MP3 and MP2 take the MPEG-1 rates only; Opus is always
# decoded (and reported) at 48 kHz, whatever rate it was encoded at.
LOW_RATES = {"avi": {8000: 32000, 22050: 32000}, "mpeg": {8000: 32000, 22050: 32000},
             "mp3": {8000: 32000, 22050: 32000}}


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


Converted = tuple[Path, Run, Path, Path]  # source, the transcoder's run, output, its scratch


@pytest.fixture(scope="session")
def converted(family_dir: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> Callable[[Family, str], Converted]:
    """A family's conversions into all its targets, made the first time one is asked for,
    as many at once as there are cores (each transcoder is a process of its own)."""
    done: dict[str, dict[str, Converted]] = {}

    def get(family: Family, fmt: str) -> Converted:
        if family.name not in done:
            source = _source(family, family_dir)
            folder = tmp_path_factory.mktemp(family.name)

            def one(target: str) -> tuple[str, Converted]:
                scratch = folder / f"scratch-{target}"
                scratch.mkdir()
                out = folder / f"out.{target}"
                run = transcode(source, out, target, env=transcoder_env(scratch))
                return target, (source, run, out, scratch)

            targets = [t for f, t in CASES if f.name == family.name]
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                done[family.name] = dict(pool.map(one, targets))
        return done[family.name][fmt]

    return get


def _source(family: Family, folder: Path) -> Path:
    if family.needs == "imageio":
        pytest.importorskip("imageio_ffmpeg")  # Debian's ffmpeg 5.1 has no animated WebP
    return make(family, folder)


@functools.cache
def _probe_input(path: Path) -> dict[str, Any]:
    return ffprobe(path)


def _duration(info: dict[str, Any]) -> float:
    return float(info["format"]["duration"])


def spans(path: Path) -> dict[str, tuple[float, float]]:
    """Per stream kind, when its first packet starts and its last one ends (seconds)."""
    kinds = {str(s["index"]): s["codec_type"] for s in ffprobe(path)["streams"]}
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,duration_time",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    found: dict[str, list[float]] = {}
    for line in out.splitlines():
        index, pts, duration = (line.split(",") + ["", ""])[:3]
        if pts not in ("", "N/A"):
            end = float(pts) + (float(duration) if duration not in ("", "N/A") else 0.0)
            found.setdefault(kinds.get(index, "?"), []).extend((float(pts), end))
    return {kind: (min(t), max(t)) for kind, t in found.items()}


CASES = [(f, fmt) for f in VIDEO_FAMILIES for fmt in VIDEO_FORMATS + ["mp3"] * f.audio
         if fmt != "av1" or f.name in AV1_FAMILIES]


@pytest.mark.parametrize(("family", "fmt"), CASES,
                         ids=[f"{f.name}-{fmt}" for f, fmt in CASES])
def test_every_input_family_converts_into_every_target(
        family: Family, fmt: str, converted: Callable[[Family, str], Converted]) -> None:
    source, run, out, scratch = converted(family, fmt)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.result["status"] == "ok"
    assert list(scratch.iterdir()) == []

    container, vcodec, acodec = PROMISED[fmt]
    info = ffprobe(out)
    inp = _probe_input(source)
    assert info["format"]["format_name"] == container
    video, audio = streams(info, "video"), streams(info, "audio")
    assert [s["codec_name"] for s in audio] == ([acodec] if family.audio else [])
    if fmt == "mp3":  # an audio target is as long as the input's sound
        sound = streams(inp, "audio")[0]
        origin = float(inp["format"].get("start_time", 0))
        length = float(sound.get("start_time", origin)) - origin + float(sound["duration"]) \
            if "duration" in sound else _duration(inp)
        assert _duration(info) == pytest.approx(length, abs=0.2)
    else:
        if "duration" in inp["format"]:  # animated WebP has none
            assert _duration(info) == pytest.approx(_duration(inp), abs=0.2)
        else:
            assert _duration(info) == pytest.approx(1.0, abs=0.2)
        [v] = video
        assert v["codec_name"] == vcodec
        assert (v["width"], v["height"]) == family.size  # upright, even sides
        assert not any("rotation" in d for d in v.get("side_data_list", []))
        assert v["pix_fmt"] == "yuv420p"
        assert v.get("field_order", "progressive") in ("progressive", "unknown")
        if "alpha" in family.traits and fmt == "webm":
            assert v.get("tags", {}).get("alpha_mode") == "1"  # VP9 keeps the transparency
    if family.audio:
        [a] = audio
        assert a["channels"] == (family.channels if family.channels <= 2 or fmt in SURROUND
                                 else 2)
        rate = int(a["sample_rate"])
        if family.sample_rate > 48000:
            assert rate == (family.sample_rate if fmt in HIRES else 48000)
        else:
            expected = LOW_RATES.get(fmt, {}).get(family.sample_rate, family.sample_rate)
            assert rate == (48000 if fmt == "webm" else expected)
    subtitles = [s["codec_name"] for s in streams(info, "subtitle")]
    assert subtitles == ([SUBTITLES[fmt]] if family.subtitles and fmt in SUBTITLES else [])
    if {"late audio", "video outlasts audio"} & set(family.traits) and fmt != "mp3":
        # Both streams start together and end together: sound in sync, picture to the end.
        found = spans(out)
        (v0, v1), (a0, a1) = found["video"], found["audio"]
        assert a0 == pytest.approx(v0, abs=0.1), found
        assert a1 == pytest.approx(v1, abs=0.2), found


@pytest.mark.parametrize("family", AUDIO_FAMILIES, ids=[f.name for f in AUDIO_FAMILIES])
def test_audio_only_inputs_convert_to_mp3(family: Family, family_dir: Path, tmp_path: Path,
                                         env: dict[str, str]) -> None:
    source = _source(family, family_dir)
    out = tmp_path / "out.mp3"
    run = transcode(source, out, "mp3", env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    info = ffprobe(out)
    assert [s["codec_name"] for s in info["streams"]] == ["mp3"]  # cover art is no video
    assert _duration(info) == pytest.approx(_duration(ffprobe(source)), abs=0.2)
    assert int(info["streams"][0]["channels"]) <= 2
    assert int(info["streams"][0]["sample_rate"]) in (48000, 44100, 32000)


@pytest.mark.parametrize("fmt", ["mp4", "wmv"])
def test_an_audio_only_input_asked_for_a_video_format_gets_a_clear_error(
        fmt: str, family_dir: Path, tmp_path: Path, env: dict[str, str]) -> None:
    source = _source(AUDIO_FAMILIES[0], family_dir)  # an mp3 with cover art
    out = tmp_path / f"out.{fmt}"
    run = transcode(source, out, fmt, env=env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.result["code"] == "no_video"
    assert run.result["error"] == (f"The input is audio only, so it cannot become a {fmt} "
                                   "video; convert it to one of mp3, m4a, opus, flac, wav.")
    assert not out.exists()
