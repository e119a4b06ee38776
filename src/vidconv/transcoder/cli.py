"""``python -m vidconv.transcoder --input SRC --output DST --format FMT [--option KEY=VALUE ...]``.

Download to scratch -> sniff + probe + allow-list -> ffmpeg -> verify -> upload -> result.
Exit 0 done, 2 the input can't be converted (permanent), 1 anything else (retryable).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from vidconv import logs
from vidconv.contract import TASK_ID, Progress, Result
from vidconv.formats import FORMATS, FormatError, Profile, get_profile
from vidconv.options import validate_options
from vidconv.settings import Settings
from vidconv.transcoder import ffmpeg, locations, plan
from vidconv.transcoder.errors import BadInput, Terminated, TranscodeError
from vidconv.transcoder.probe import MediaInfo, identify
from vidconv.transcoder.report import Reporters
from vidconv.transcoder.tools import locate

log = logging.getLogger("vidconv.transcoder")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # a result line and exit 2, not just usage text
        raise BadInput("usage", f"Invalid arguments: {message}.")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="python -m vidconv.transcoder", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="local path or s3://bucket/key")
    parser.add_argument("--output", required=True, help="local path or s3://bucket/key")
    parser.add_argument("--format", required=True, help="target format, e.g. mp4")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="profile option (max_height, video_bitrate, quality, audio, start, "
                             "duration); repeatable")
    return parser.parse_args(argv)


def parse_options(pairs: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput("invalid_option", f"Option {pair!r} is not KEY=VALUE.")
        if key in options:
            raise BadInput("invalid_option", f"Option {key} is given twice.")
        options[key] = value
    return options


_stopping = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts; a second one must not cut the cleanup short.
    global _stopping
    if not _stopping:
        _stopping = True
        raise Terminated(signal.Signals(signum).name)


def convert(settings: Settings, args: argparse.Namespace, reporters: Reporters,
            scratch: Path) -> Result:
    try:
        profile = get_profile(args.format)
        options = validate_options(args.format, parse_options(args.option))
    except FormatError as exc:
        raise BadInput(exc.code, str(exc)) from exc
    tools = locate(settings)
    log.info("ffmpeg %s (from %s), probe with %s", tools.ffmpeg, tools.source,
             tools.ffprobe or "ffmpeg -i")
    source = scratch / "input"
    marks = [time.monotonic()]
    size = locations.fetch(settings, args.input, source)
    marks.append(time.monotonic())
    tools, info = identify(tools, source)  # animated WebP may need another ffmpeg
    marks.append(time.monotonic())
    log.info("input %s: %d bytes, %s, %s s, video %s, audio %s", args.input, size,
             info.format_name, info.duration, info.video, info.audio)
    _check_bounds(settings, profile, info, options)

    folder = scratch / "out"
    folder.mkdir()
    work = plan.make(tools, info, source, folder, locations.basename(args.output), profile,
                     options, settings.max_duration_seconds)
    log.info("running %s", " ".join(work.command))
    duration = None if info.duration is None else round(info.duration, 3)

    def report(event: dict[str, Any]) -> None:
        reporters.progress(Progress.from_json({**event, "input_duration": duration}).to_json())

    report({"progress": 0, "out_time": 0.0})
    run = ffmpeg.run(work.command, work.expected, settings.transcode_timeout_seconds, report)
    facts = plan.finish(work, tools, info, profile, options, run.out_time)
    marks.append(time.monotonic())
    report({"progress": 100, "speed": round(run.out_time / run.elapsed, 2) if run.elapsed
            else None, "out_time": round(run.out_time, 3)})
    uploaded = locations.deliver_folder(settings, folder, work.main, args.output)
    marks.append(time.monotonic())
    log.info("timings: fetch %.3f s, probe %.3f s, ffmpeg %.3f s, deliver %.3f s",
             *(b - a for a, b in zip(marks, marks[1:], strict=False)))
    return Result(ok=True, output=args.output, size=uploaded, **facts, format=profile.name,
                  command=work.command,
                  input_duration=duration,
                  ffmpeg=tools.ffmpeg, ffmpeg_source=tools.source)


def _check_bounds(settings: Settings, profile: Profile, info: MediaInfo,
                  options: dict[str, Any]) -> None:
    if info.duration is not None and info.duration > settings.max_duration_seconds:
        raise BadInput("too_long", f"The input lasts {info.duration:.0f} s, more than the limit "
                                   f"of {settings.max_duration_seconds:g} s.")
    if info.video is not None and (info.video.width > settings.max_width
                                   or info.video.height > settings.max_height):
        raise BadInput("resolution_too_large",
                       f"The input is {info.video.width}x{info.video.height}, more than the "
                       f"limit of {settings.max_width}x{settings.max_height}.")
    if profile.video is not None and info.video is None:
        what = "picture" if profile.picture else "video"
        audio = ", ".join(name for name, p in FORMATS.items() if p.audio_only)
        raise BadInput("no_video", f"The input is audio only, so it cannot become a "
                                   f"{profile.name} {what}; convert it to one of {audio}.")
    if profile.audio_only and info.audio is None:
        raise BadInput("no_audio", f"The input has no audio stream to convert to {profile.name}.")
    start = float(options.get("start", 0))
    if start and info.duration is not None and start >= info.duration:
        raise BadInput("invalid_option", f"Option start={start:g} is at or after the input's "
                                         f"end ({info.duration:.2f} s).")
    at = options.get("thumbnail_at")
    expected = ffmpeg.expected_duration(info, options)
    if at is not None and expected is not None and at >= expected:
        raise BadInput("invalid_option", f"Option thumbnail_at={at:g} is at or after the "
                                         f"output's end ({expected:.2f} s).")


def main(argv: list[str] | None = None) -> int:
    global _stopping
    _stopping = False
    settings = Settings.from_env()
    logs.configure(settings)
    logs.bind_task(os.environ.get(TASK_ID) or None)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)
    reporters = Reporters.from_env()
    started = time.monotonic()
    scratch: Path | None = None
    try:
        try:
            args = parse_args(sys.argv[1:] if argv is None else argv)
            base = settings.scratch_dir or None
            if base:
                Path(base).mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix="vidconv-", dir=base))
            result = convert(settings, args, reporters, scratch)
            code = 0
        except TranscodeError as exc:
            result, code = Result.failure(exc.code, exc.message, exc.detail), exc.exit_code
        except Terminated as exc:
            result, code = _error("terminated", f"Stopped by {exc}."), 1
        except OSError as exc:  # scratch full or unwritable: another node/attempt may do better
            result, code = _error("os_error", f"System error: {exc}."), 1
        except Exception as exc:  # noqa: BLE001 - a bug: still answer with a result line
            log.exception("unexpected failure")
            result, code = _error("internal_error", f"Unexpected error: {exc!r}."), 1
        finally:
            _stopping = True  # from here on signals are ignored: clean up, report the result
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        log.info("%s in %.2f s: %s", "done" if code == 0 else "failed",
                 time.monotonic() - started, result.output if result.ok else result.error)
        reporters.result(result.to_json())
    finally:
        reporters.close()
    return code


def _error(code: str, message: str) -> Result:
    return Result.failure(code, message)
