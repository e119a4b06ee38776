"""Run the transcoder the way both executors do (a subprocess), and inspect what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# format -> (ffprobe format_name, video codec, audio codec)
PROMISED = {
    "mp4": ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "aac"),
    "mov": ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "aac"),
    "mkv": ("matroska,webm", "h264", "aac"),
    "webm": ("matroska,webm", "vp9", "opus"),
    "avi": ("avi", "mpeg4", "mp3"),
    "mpeg": ("mpeg", "mpeg2video", "mp2"),
    "wmv": ("asf", "wmv2", "wmav2"),
    "mp3": ("mp3", None, "mp3"),
    "av1": ("mov,mp4,m4a,3gp,3g2,mj2", "av1", "aac"),
    "m4a": ("mov,mp4,m4a,3gp,3g2,mj2", None, "aac"),
    "opus": ("ogg", None, "opus"),
    "flac": ("flac", None, "flac"),
    "wav": ("wav", None, "pcm_s16le"),
}
VIDEO_FORMATS = sorted(f for f, (_, video, _) in PROMISED.items() if video)


@dataclass
class Run:
    returncode: int
    lines: list[dict[str, Any]]
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        return self.lines[-1]

    @property
    def progress(self) -> list[float]:
        return [e["progress"] for e in self.lines if e.get("event") == "progress"]


def transcoder_env(scratch: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")}
    env["VIDCONV_SCRATCH_DIR"] = str(scratch)
    env.update(extra or {})
    return env


def command(src: str, dst: str, fmt: str, *options: str) -> list[str]:
    cmd = [sys.executable, "-m", "vidconv.transcoder", "--input", src, "--output", dst,
           "--format", fmt]
    for opt in options:
        cmd += ["--option", opt]
    return cmd


def parse(stdout: str) -> list[dict[str, Any]]:
    # Every stdout line must be JSON: the executors parse it line by line.
    return [json.loads(line) for line in stdout.splitlines()]


def transcode(src: str | Path, dst: str | Path, fmt: str, *options: str, env: dict[str, str],
              timeout: float = 120) -> Run:
    proc = subprocess.run(command(str(src), str(dst), fmt, *options), env=env,
                          capture_output=True, text=True, timeout=timeout)
    return Run(proc.returncode, parse(proc.stdout), proc.stdout, proc.stderr)
