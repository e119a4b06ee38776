"""Build the ffmpeg command for a profile, run it, turn ``-progress`` output into events."""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vidconv import formats
from vidconv.formats import Profile, encode_args
from vidconv.transcoder.adapt import stream_args
from vidconv.transcoder.diagnose import MAX_ERROR_RATE, classify, decode_problems
from vidconv.transcoder.errors import BadInput
from vidconv.transcoder.probe import MediaInfo, input_args

log = logging.getLogger("vidconv.transcoder")

PROGRESS_INTERVAL = 1.0  # seconds between progress events


def head(ffmpeg: str, info: MediaInfo, src: Path, options: Mapping[str, Any],
         decoding: list[str] | None = None) -> list[str]:
    """Everything up to and including the input: reporting, the input's pinned demuxer and
    whitelists, ``decoding`` options, the seek to ``start``."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats",
           "-progress", "pipe:1", "-max_error_rate", MAX_ERROR_RATE, *input_args(info.demuxer),
           *(decoding or [])]
    if options.get("start"):
        cmd += ["-ss", _seconds(options["start"])]  # input seek: fast, exact when re-encoding
    return [*cmd, "-i", f"file:{src}"]


def output_limit(options: Mapping[str, Any], max_duration: float) -> float:
    """Always capped at the allowed maximum: the header's duration (checked before) may lie,
    or be missing (browser recordings), and the content run on for hours."""
    return min(float(options.get("duration") or max_duration), max_duration)


def build_command(ffmpeg: str, info: MediaInfo, src: Path, dst: Path, profile: Profile,
                  options: Mapping[str, Any], max_duration: float) -> list[str]:
    cmd = head(ffmpeg, info, src, options)
    cmd += ["-t", _seconds(output_limit(options, max_duration))]
    keep_audio = bool(info.audio is not None and options.get("audio", True))
    # The probe's video (never cover art), audio and text subtitles, adapted to the encoders.
    cmd += stream_args(profile, info, options, keep_audio)
    # No metadata, chapters or data: nothing of the input's but picture, sound and subtitles.
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-dn"]
    cmd += encode_args(profile, options, has_audio=keep_audio)
    cmd += [*profile.muxer_args, "-f", profile.muxer, "-y", f"file:{dst}"]
    return cmd


def _seconds(value: float) -> str:
    return f"{float(value):.3f}"


def expected_duration(info: MediaInfo, options: Mapping[str, Any]) -> float | None:
    return formats.expected_duration(info.duration, options)


try:  # loaded before any fork: the child only makes one call
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    # Linux: if we are SIGKILLed, the kernel kills ffmpeg too (PR_SET_PDEATHSIG = 1).
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)


@dataclass
class RunResult:
    elapsed: float
    out_time: float


def run(cmd: list[str], expected: float | None, timeout: float,
        on_progress: Callable[[dict[str, Any]], None]) -> RunResult:
    """Run ffmpeg; call ``on_progress`` at most every PROGRESS_INTERVAL; raise on failure."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_die_with_parent)
    assert proc.stdout is not None and proc.stderr is not None
    tail: collections.deque[str] = collections.deque(maxlen=200)
    reader = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
    reader.start()
    timed_out = threading.Event()

    def kill_on_timeout() -> None:
        timed_out.set()
        _kill(proc)

    timer = threading.Timer(timeout, kill_on_timeout)
    timer.daemon = True
    timer.start()
    out_time = 0.0
    try:
        block: dict[str, str] = {}
        last = 0.0
        for raw in proc.stdout:
            key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
            block[key] = value
            if key != "progress":
                continue
            out_time = _out_time(block, out_time)
            now = time.monotonic()
            if value != "end" and now - last >= PROGRESS_INTERVAL:
                last = now
                on_progress(_event(block, out_time, expected))
            block = {}
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            _kill(proc)  # an exception (SIGTERM) interrupted us: ffmpeg must not outlive us
        reader.join(5)
    elapsed = time.monotonic() - started
    if timed_out.is_set():
        raise BadInput("timeout", f"The conversion took longer than the {timeout:g} s limit.")
    if proc.returncode != 0:
        error = classify(proc.returncode, list(tail))
        log.warning("ffmpeg failed (exit status %s, %s); its last words:\n%s", proc.returncode,
                    error.code, error.detail)
        raise error
    if problems := decode_problems(list(tail)):
        # Skipped, as in every target (vidconv.transcoder.diagnose); operators may want to know.
        log.warning("ffmpeg skipped %d damaged part(s) of the input:\n%s", problems,
                    "\n".join(tail))
    return RunResult(elapsed, out_time)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _drain(stream: IO[bytes], tail: collections.deque[str]) -> None:
    for line in stream:
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            tail.append(text)
            log.debug("ffmpeg: %s", text)


def _out_time(block: Mapping[str, str], previous: float) -> float:
    for key in ("out_time_us", "out_time_ms"):  # both are microseconds (an old ffmpeg quirk)
        try:
            return max(0.0, int(block[key]) / 1e6)
        except (KeyError, ValueError):
            continue
    return previous


def _number(text: str | None) -> float | None:
    try:
        return float((text or "").rstrip("x"))
    except ValueError:
        return None


def _event(block: Mapping[str, str], out_time: float, expected: float | None) -> dict[str, Any]:
    percent = 0.0
    if expected:
        percent = min(99.0, 100.0 * out_time / expected)  # 100 only once ffmpeg succeeded
    return {"event": "progress", "progress": round(percent, 1), "fps": _number(block.get("fps")),
            "speed": _number(block.get("speed")), "out_time": round(out_time, 3)}
