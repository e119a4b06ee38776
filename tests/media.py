"""Look at a media file the way a user's player would: ffprobe's JSON view of it."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest


def ffprobe(path: Path) -> dict[str, Any]:
    exe = shutil.which("ffprobe")
    if exe is None:
        pytest.skip("ffprobe is needed to check outputs (Debian's ffmpeg package has it)")
    out = subprocess.run([exe, "-v", "error", "-show_format", "-show_streams", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def streams(info: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


def wreck_mp4(clip: Path, dest: Path) -> Path:
    """``clip`` (an MP4 with its index in front) with its media data noise after the first fifth:
    the index is whole and says the full length, the frames are mostly unreadable."""
    data = bytearray(clip.read_bytes())
    media = data.index(b"mdat") + 4
    cut = media + (len(data) - media) // 5
    data[cut:] = random.Random(7).randbytes(len(data) - cut)
    dest.write_bytes(bytes(data))
    return dest
