"""Audio targets (m4a, opus, flac, wav, mp3) from video and from audio inputs, with the channels,
sample rate and bitrate asked for: what a player reads back from the file."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ffmpeg_path
from tests.media import ffprobe, streams
from tests.transcoder.helpers import transcode


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s of 16-bit stereo at 44.1 kHz: a different tone in each ear."""
    out = tmp_path_factory.mktemp("audio") / "tones.wav"
    subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100:duration=1.5", "-f", "lavfi", "-i",
                    "sine=frequency=660:sample_rate=44100:duration=1.5", "-filter_complex",
                    "[0:a][1:a]join=inputs=2:channel_layout=stereo", "-c:a", "pcm_s16le",
                    str(out)], check=True)
    return out


# (format, options, channels, sample rate, bits) as the file says; bits only where lossless.
CASES = [
    ("m4a", (), 2, 44100, None),
    ("m4a", ("channels=1", "sample_rate=22050", "audio_bitrate=64"), 1, 22050, None),
    ("opus", ("channels=1", "audio_bitrate=48"), 1, 48000, None),
    ("opus", ("channels=6",), 6, 48000, None),
    ("flac", (), 2, 44100, "16"),  # a 16-bit source stays 16-bit
    ("flac", ("sample_rate=96000", "channels=1"), 1, 96000, "16"),
    ("wav", ("channels=1", "sample_rate=16000"), 1, 16000, None),
    ("mp3", ("audio_bitrate=96", "sample_rate=32000"), 2, 32000, None),
]


@pytest.mark.parametrize(("fmt", "options", "channels", "rate", "bits"), CASES,
                         ids=[f"{c[0]}-{'-'.join(c[1]) or 'default'}" for c in CASES])
def test_an_audio_input_converts_with_the_asked_channels_and_rate(
        fmt: str, options: tuple[str, ...], channels: int, rate: int, bits: str | None,
        stereo_wav: Path, tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / f"out.{fmt}"
    run = transcode(stereo_wav, out, fmt, *options, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    info = ffprobe(out)
    [audio] = streams(info, "audio")
    assert streams(info, "video") == []
    assert (audio["channels"], int(audio["sample_rate"])) == (channels, rate)
    assert float(info["format"]["duration"]) == pytest.approx(1.5, abs=0.1)
    if bits:
        assert audio["bits_per_raw_sample"] == bits
    bitrate = next((o.split("=")[1] for o in options if o.startswith("audio_bitrate=")), None)
    if bitrate and fmt in ("m4a", "mp3"):  # Ogg keeps no bitrate; these state the mean
        assert int(audio["bit_rate"]) == pytest.approx(int(bitrate) * 1000, rel=0.15)
    assert run.result["audio_codec"] == audio["codec_name"]


def test_the_sound_of_a_video_becomes_an_m4a_with_the_itunes_brand(
        make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "sound.m4a"
    run = transcode(make_clip(seconds=1.0), out, "m4a", "channels=2", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    info = ffprobe(out)
    assert [s["codec_type"] for s in info["streams"]] == ["audio"]
    assert info["streams"][0]["channels"] == 2  # the mono clip, upmixed as asked
    assert info["format"]["tags"]["major_brand"] == "M4A "
    assert out.read_bytes().index(b"moov") < out.read_bytes().index(b"mdat")  # plays at once


@pytest.mark.parametrize(("fmt", "options", "channels", "rate"), [
    ("mp3", ("sample_rate=22050",), 2, 32000),  # MP3 keeps to the MPEG-1 rates
    ("m4a", ("channels=7",), 6, 44100),  # AAC has no 7-channel layout: 6, the fewer of 6 and 8
    ("wav", ("channels=6", "sample_rate=12345"), 6, 12000),
])
def test_what_a_codec_cannot_carry_becomes_the_nearest_it_can(
        fmt: str, options: tuple[str, ...], channels: int, rate: int, stereo_wav: Path,
        tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / f"out.{fmt}"
    run = transcode(stereo_wav, out, fmt, *options, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    [audio] = streams(ffprobe(out), "audio")
    assert (audio["channels"], int(audio["sample_rate"])) == (channels, rate)
