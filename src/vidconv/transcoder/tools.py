"""Which ffmpeg (and ffprobe) to run: VIDCONV_FFMPEG, else PATH, else imageio-ffmpeg's build."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vidconv.settings import Settings
from vidconv.transcoder.errors import Retryable


@dataclass(frozen=True)
class Tools:
    ffmpeg: str
    ffprobe: str | None  # None: probe by parsing ``ffmpeg -i`` (imageio-ffmpeg has no ffprobe)
    source: str  # VIDCONV_FFMPEG | PATH | imageio-ffmpeg


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _sibling_ffprobe(ffmpeg: str) -> str | None:
    # Only an ffprobe from the same build: a different version could disagree on formats.
    candidate = Path(ffmpeg).with_name("ffprobe")
    return str(candidate) if _executable(str(candidate)) else None


def locate(settings: Settings) -> Tools:
    if settings.ffmpeg:
        found = shutil.which(settings.ffmpeg)
        if not found:
            raise Retryable("ffmpeg_missing",
                            f"VIDCONV_FFMPEG={settings.ffmpeg} is not executable.")
        return Tools(found, _sibling_ffprobe(found), "VIDCONV_FFMPEG")
    found = shutil.which("ffmpeg")
    if found:
        return Tools(found, _sibling_ffprobe(found), "PATH")
    try:
        import imageio_ffmpeg

        exe = str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise Retryable("ffmpeg_missing",
                        "No ffmpeg found (VIDCONV_FFMPEG, PATH, imageio-ffmpeg).") from exc
    return Tools(exe, None, "imageio-ffmpeg")


def alternate_for(tools: Tools) -> Tools | None:
    """imageio-ffmpeg's static build (a recent ffmpeg), when installed and not ``tools``."""
    try:
        import imageio_ffmpeg

        exe = str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return None
    if os.path.realpath(exe) == os.path.realpath(tools.ffmpeg):
        return None
    return Tools(exe, None, "imageio-ffmpeg")
