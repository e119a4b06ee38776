"""Errors a person can read: one sentence and a code; ffmpeg's words only in the log.

A damaged input gets the same outcome in every target: a few bad packets are skipped and the
conversion succeeds, a mostly unreadable file fails with the same code and sentence.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ffmpeg_path
from tests.media import ffprobe, wreck_mp4
from tests.transcoder.helpers import PROMISED, transcode
from vidconv.transcoder.diagnose import MESSAGES, classify

STDERR = {
    # What ffmpeg said, as seen in the field, and the class it belongs to.
    "corrupt_input": [
        "[aac @ 0x5623de818300] Number of bands (47) exceeds limit (42).",
        "Error while decoding stream #0:1: Invalid data found when processing input",
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found",
        "[h264 @ 0x5] Invalid NAL unit size (1234 > 56).\n[h264 @ 0x5] Error splitting the "
        "input into NAL units.",
        "[hevc @ 0x5] PPS id out of range: 12\n[hevc @ 0x5] Error parsing NAL unit #2.\n"
        "[hevc @ 0x5] ... is not implemented. Update your FFmpeg version",  # damage wins
    ],
    "unsupported_stream": [
        "[h264 @ 0x5] Your platform doesn't support hardware accelerated AV1 decoding.\n"
        "[h264 @ 0x5] Unsupported bit depth 14",
        "Decoder (codec none) not found for input stream #0:0",
        "[hevc @ 0x5] The following bit-depths are currently specified: 16. "
        "This feature is not implemented.",
    ],
    "resource_limit": [
        "av_interleaved_write_frame(): No space left on device",
        "[libx264 @ 0x5] malloc of size 12345678 failed\nCannot allocate memory",
    ],
    "internal_error": [
        "[mp2 @ 0x55b62d6c9f00] bitrate 192 is not allowed in mp2\nError initializing output "
        "stream 0:1 -- Error while opening encoder for output stream #0:1 - maybe incorrect "
        "parameters such as bit_rate, rate, width or height",
        "[libopus @ 0x5] Invalid channel layout 5.1(side) for specified mapping family -1.",
    ],
}


@pytest.mark.parametrize(("code", "stderr"),
                         [(c, e) for c, lines in STDERR.items() for e in lines])
def test_ffmpeg_failures_are_classified_into_one_sentence(code: str, stderr: str) -> None:
    error = classify(1, stderr.splitlines())
    assert error.code == code
    assert error.message == MESSAGES[code]
    assert "@ 0x" not in error.message and stderr.splitlines()[-1] in error.detail
    assert error.exit_code == (2 if code in ("corrupt_input", "unsupported_stream") else 1)


def test_a_killed_ffmpeg_is_a_resource_limit_that_may_be_retried() -> None:
    error = classify(-9, [])
    assert (error.code, error.exit_code) == ("resource_limit", 1)


def test_every_message_is_one_sentence() -> None:
    for message in MESSAGES.values():
        assert message[0].isupper() and message.endswith(".") and message.count(". ") == 0


def _clip(path: Path, *extra: str) -> Path:
    subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=3",
                    "-f", "lavfi", "-i", "sine=sample_rate=48000:duration=3",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "12", "-c:a", "aac",
                    "-shortest", *extra, str(path)], check=True, capture_output=True)
    return path


def _garble(source: Path, dest: Path, share: float, first: float, last: float) -> Path:
    """Overwrite the payload of ``share`` of the TS packets between ``first`` and ``last``
    (fractions of the file), keeping their headers: decodable timing, damaged content."""
    data = bytearray(source.read_bytes())
    count = len(data) // 188
    rng = random.Random(7)
    for i in range(int(count * first), int(count * last)):
        if rng.random() < share:
            data[i * 188 + 4:(i + 1) * 188] = rng.randbytes(184)
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture(scope="module")
def clean_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _clip(tmp_path_factory.mktemp("corrupt") / "clean.ts")


@pytest.fixture(scope="module")
def wrecked_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP4 whose index is whole (it says 3 s) but whose media data is noise after 1/5."""
    clip = _clip(tmp_path_factory.mktemp("wreck") / "clean.mp4", "-movflags", "+faststart")
    return wreck_mp4(clip, clip.with_name("wreck.mp4"))


@pytest.mark.parametrize("fmt", sorted(PROMISED))
def test_a_few_damaged_packets_are_skipped_in_every_target(
        fmt: str, clean_ts: Path, tmp_path: Path, env: dict[str, str]) -> None:
    glitch = _garble(clean_ts, tmp_path / "glitch.ts", 0.05, 0.4, 0.6)
    out = tmp_path / f"out.{fmt}"
    run = transcode(glitch, out, fmt, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert float(ffprobe(out)["format"]["duration"]) == pytest.approx(3.0, abs=0.2)
    assert "skipped" in run.stderr  # the operator is told what was skipped


@pytest.mark.parametrize("fmt", sorted(PROMISED))
def test_a_mostly_unreadable_input_fails_the_same_way_in_every_target(
        fmt: str, wrecked_mp4: Path, tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / f"out.{fmt}"
    run = transcode(wrecked_mp4, out, fmt, env=env)
    assert run.returncode == 2, run.stdout + run.stderr[-3000:]
    assert run.result["code"] == "corrupt_input"
    assert run.result["error"] == MESSAGES["corrupt_input"]
    assert not out.exists()
    # ffmpeg's own words are for operators: in the log and the result's detail.
    assert "Invalid data found" in run.stderr and "Invalid data found" in run.result["detail"]
