"""The one contract between the executors and the transcoder, typed, in the core.

Everything that crosses the process boundary is defined here once and used by every writer and
reader: the command line (``transcoder_command``), the environment (``transcoder_env``, an
allow-list, for the local executor's subprocess and the Job's container alike), the exit codes,
the JSON lines on stdout (``Progress`` and ``Result``, the result also being the pod's termination
message) and the ConversionTask phases (``Phase``). The transcoder writes a ``Result``; the local
executor, ``vidconv.db.updates`` and the operator read it back with ``Result.from_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vidconv.settings import Settings

# -- exit codes (the Job's podFailurePolicy keys on EXIT_BAD_INPUT) --------------------------------

EXIT_OK = 0
EXIT_RETRYABLE = 1  # storage down, disk full, killed: another attempt may succeed
EXIT_BAD_INPUT = 2  # the input, format or options can't be converted: never retried

# -- the command line --------------------------------------------------------------------------

MODULE = "vidconv.transcoder"


def transcoder_args(
    source: str, target: str, fmt: str, options: Mapping[str, Any]
) -> list[str]:
    """The arguments of ``python -m vidconv.transcoder`` for one task.

    Both executors run exactly these; options sorted, so one task gives one argv.
    """
    args = ["--input", source, "--output", target, "--format", fmt]
    for key in sorted(options):
        value = options[key]
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        args += ["--option", f"{key}={text}"]
    return args


def transcoder_command(
    python: str, source: str, target: str, fmt: str, options: Mapping[str, Any]
) -> list[str]:
    """The whole argv: ``python`` is the image's ``python`` or this interpreter's path."""
    return [python, "-m", MODULE, *transcoder_args(source, target, fmt, options)]


# -- the environment ---------------------------------------------------------------------------

# The settings the transcoder reads, and nothing else: no database URL, no JWT secret, no
# executor or Kubernetes settings. Empty values are left out so that an image's own default
# (the transcoder image sets VIDCONV_FFMPEG) is not overridden by "use the default".
TRANSCODER_SETTINGS = (
    "storage", "s3_endpoint", "s3_region", "s3_bucket",
    "max_input_bytes", "max_duration_seconds", "max_width", "max_height",
    "transcode_timeout_seconds", "ffmpeg", "scratch_dir", "log_level", "log_format",
)
# Settings that are secrets: the local executor passes their values, the Job a secretKeyRef.
SECRET_SETTINGS = ("s3_access_key", "s3_secret_key")
# Variables that are not settings: the task (its log lines carry the id), the CR the
# transcoder reports progress to, and the pid of the process that started it (the transcoder
# ends itself when that process is gone).
TASK_ID = "VIDCONV_TASK_ID"
TASK_NAME = "VIDCONV_TASK_NAME"
TASK_NAMESPACE = "VIDCONV_TASK_NAMESPACE"
PARENT_PID = "VIDCONV_PARENT_PID"
# What a local subprocess inherits from the server's own environment: finding programs and
# Python, locale and time zone, temp dirs; imageio-ffmpeg's override of its binary.
INHERITED = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TEMP", "TMP",
    "PYTHONPATH", "SYSTEMROOT", "IMAGEIO_FFMPEG_EXE",
)


def env_name(setting: str) -> str:
    return f"VIDCONV_{setting.upper()}"


def transcoder_env(
    settings: Settings, *, secrets: bool = True, inherit: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The transcoder's environment: the allow-listed settings, then ``extra``.

    ``secrets=False`` leaves the S3 keys out (the Job references them from a Secret);
    ``inherit`` is the environment to copy the ``INHERITED`` variables from (the local
    executor passes ``os.environ``; a Job's container has the image's own).
    """
    env = {k: v for k, v in (inherit or {}).items() if k in INHERITED}
    names: Iterable[str] = TRANSCODER_SETTINGS + (SECRET_SETTINGS if secrets else ())
    for name in names:
        value = str(getattr(settings, name))
        if value:
            env[env_name(name)] = value
    env.update(extra or {})
    return env


# -- stdout: progress lines, then one result line -----------------------------------------------


@dataclass(frozen=True)
class Progress:
    """``{"event": "progress", "progress": 0..100, "fps", "speed", "out_time",
    "input_duration"}``: speed is x real time; input_duration (the probe's, seconds) lets a
    reader tell how much is left (``vidconv.formats.expected_duration``)."""

    progress: float
    fps: float | None = None
    speed: float | None = None
    out_time: float | None = None
    input_duration: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"event": "progress", "progress": self.progress, "fps": self.fps,
                "speed": self.speed, "out_time": self.out_time,
                "input_duration": self.input_duration}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Progress:
        return cls(_float(data.get("progress")) or 0.0, _float(data.get("fps")),
                   _float(data.get("speed")), _float(data.get("out_time")),
                   _float(data.get("input_duration")))


@dataclass(frozen=True)
class Result:
    """The transcoder's last word: printed as the last stdout line and as the termination
    message. ``ok`` with the output's facts, or an ``error`` with its machine-readable ``code``.
    """

    ok: bool
    output: str | None = None  # where the output went (a path or s3://bucket/key)
    size: int | None = None
    duration: float | None = None
    input_duration: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    format: str | None = None
    command: list[str] = field(default_factory=list)
    ffmpeg: str | None = None
    ffmpeg_source: str | None = None
    error: str | None = None
    code: str | None = None
    detail: str | None = None  # for operators: what the tools said (ffmpeg's stderr tail)

    @classmethod
    def failure(cls, code: str, error: str, detail: str | None = None) -> Result:
        return cls(ok=False, code=code, error=error, detail=detail or None)

    def to_json(self) -> dict[str, Any]:
        """The wire form: ``{"event": "result", "status": "ok" | "error", ...}``."""
        if not self.ok:
            failed = {"event": "result", "status": "error", "error": self.error or "",
                      "code": self.code or "error"}
            return {**failed, "detail": self.detail} if self.detail else failed
        return {"event": "result", "status": "ok", "output": self.output, "size": self.size,
                "duration": self.duration, "video_codec": self.video_codec,
                "audio_codec": self.audio_codec, "format": self.format,
                "command": list(self.command), "input_duration": self.input_duration,
                "ffmpeg": self.ffmpeg, "ffmpeg_source": self.ffmpeg_source}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Result:
        """Read a result back, tolerating what a damaged or older writer left out."""
        command = data.get("command")
        return cls(
            ok=data.get("status") == "ok",
            output=_str(data.get("output")),
            size=_int(data.get("size")),
            duration=_float(data.get("duration")),
            input_duration=_float(data.get("input_duration")),
            video_codec=_str(data.get("video_codec")),
            audio_codec=_str(data.get("audio_codec")),
            format=_str(data.get("format")),
            command=[str(c) for c in command] if isinstance(command, list) else [],
            ffmpeg=_str(data.get("ffmpeg")),
            ffmpeg_source=_str(data.get("ffmpeg_source")),
            error=_str(data.get("error")),
            code=_str(data.get("code")),
            detail=_str(data.get("detail")),
        )


def parse_line(line: bytes | str) -> Progress | Result | None:
    """One stdout line of the transcoder: a Progress, the Result, or None (not ours)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("event") == "result":
        return Result.from_json(data)
    if data.get("event") == "progress":
        return Progress.from_json(data)
    return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# -- ConversionTask phases -----------------------------------------------------------------------


class Phase(StrEnum):
    """``status.phase`` of a ConversionTask, and the API state each one is."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)

    @property
    def state(self) -> str:
        """The API's state name (vidconv.db.models.TaskState) for this phase."""
        return _STATES[self]

    @classmethod
    def parse(cls, value: Any) -> Phase | None:
        try:
            return cls(value)
        except ValueError:
            return None


_STATES = {Phase.PENDING: "PENDING", Phase.RUNNING: "STARTED", Phase.SUCCEEDED: "SUCCESS",
           Phase.FAILED: "FAILURE", Phase.CANCELLED: "REVOKED"}
