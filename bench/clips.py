"""What the benchmarks share: which ffmpeg to run, and the 1280x720 30 fps test clip."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vidconv.settings import Settings
from vidconv.transcoder.tools import locate


def ffmpeg_exe() -> str:
    """The ffmpeg the transcoder would pick: $VIDCONV_FFMPEG, PATH, then imageio-ffmpeg's."""
    return locate(Settings.from_env()).ffmpeg


def make_clip(path: Path, seconds: float) -> None:
    """testsrc2 + a sine tone as H.264 + AAC: a typical phone-camera-like input."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", str(path)],
        check=True,
    )
