"""Output formats: one profile per target, and strict validation of the user's options.

Shared by the API (which formats exist, MIME types, option checks before accepting a task), the
operator/CRD (the same enum and ranges) and the transcoder (the ffmpeg arguments). Profiles are
chosen so a 1280x720 30 fps input converts at 1x real time or faster on 2 cores (docs/formats.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class FormatError(ValueError):
    """The requested format or an option is not acceptable (permanent: exit code 2)."""

    code = "invalid_request"


class UnsupportedFormat(FormatError):
    code = "unsupported_format"


class InvalidOption(FormatError):
    code = "invalid_option"


@dataclass(frozen=True)
class Codec:
    """One encoder and how the 0..100 ``quality`` option maps onto it."""

    encoder: str  # ffmpeg encoder name (-c:v / -c:a)
    name: str  # codec name as ffprobe reports it in the output
    args: tuple[str, ...] = ()  # fixed encoder arguments
    quality_flag: str = ""  # e.g. -crf, -q:v; empty: no quality knob
    quality_best: int = 0  # flag value at quality=100
    quality_worst: int = 0  # flag value at quality=0
    default_quality: int = 60

    def quality_args(self, quality: int | None) -> list[str]:
        if not self.quality_flag:
            return []
        q = self.default_quality if quality is None else quality
        value = self.quality_worst + (self.quality_best - self.quality_worst) * q / 100
        return [self.quality_flag, str(round(value))]


@dataclass(frozen=True)
class Profile:
    name: str
    extension: str
    mime_type: str
    muxer: str  # ffmpeg muxer (-f)
    container: str  # a name ffprobe lists in format_name for the output
    video: Codec | None
    audio: Codec
    audio_bitrate: str = ""  # e.g. "128k"; empty: the codec's quality flag decides
    muxer_args: tuple[str, ...] = ()
    notes: str = ""

    @property
    def audio_only(self) -> bool:
        return self.video is None


# x264 "veryfast": ~3.3x real time for 720p30 on 2 cores; "medium" is only ~1.6x and leaves no
# headroom on a shared node. CRF 23 (quality 60 below) is x264's own default balance.
H264 = Codec("libx264", "h264", ("-preset", "veryfast", "-pix_fmt", "yuv420p"),
             "-crf", 16, 40, 71)
AAC = Codec("aac", "aac")
# VP9 with libvpx defaults runs at 0.2x; realtime deadline + cpu-used 8 + row-mt is ~3.4x.
VP9 = Codec("libvpx-vp9", "vp9",
            ("-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-b:v", "0",
             "-pix_fmt", "yuv420p"),
            "-crf", 15, 55, 55)
OPUS = Codec("libopus", "opus")
# The MPEG-era codecs take a fixed quantiser (-q:v 2 best .. 31 worst): fast, predictable size.
MPEG4 = Codec("mpeg4", "mpeg4", ("-vtag", "xvid", "-pix_fmt", "yuv420p"), "-q:v", 2, 31, 93)
MP3 = Codec("libmp3lame", "mp3", (), "-q:a", 0, 9, 78)
MPEG2 = Codec("mpeg2video", "mpeg2video", ("-pix_fmt", "yuv420p"), "-q:v", 2, 31, 93)
MP2 = Codec("mp2", "mp2")
WMV2 = Codec("wmv2", "wmv2", ("-pix_fmt", "yuv420p"), "-q:v", 2, 31, 93)
WMA2 = Codec("wmav2", "wmav2")

FORMATS: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("mp4", "mp4", "video/mp4", "mp4", "mp4", H264, AAC, "128k",
                ("-movflags", "+faststart"), "H.264 + AAC, index at the front for streaming"),
        Profile("webm", "webm", "video/webm", "webm", "webm", VP9, OPUS, "96k", (),
                "VP9 (realtime settings) + Opus"),
        Profile("avi", "avi", "video/x-msvideo", "avi", "avi", MPEG4, MP3, "", (),
                "MPEG-4 Part 2 (Xvid tag) + MP3"),
        Profile("mpeg", "mpeg", "video/mpeg", "mpeg", "mpeg", MPEG2, MP2, "192k", (),
                "MPEG-2 video + MP2 in an MPEG program stream"),
        Profile("wmv", "wmv", "video/x-ms-wmv", "asf", "asf", WMV2, WMA2, "128k", (),
                "Windows Media Video 8 + WMA2 in ASF"),
        Profile("mkv", "mkv", "video/x-matroska", "matroska", "matroska", H264, AAC, "128k", (),
                "H.264 + AAC in Matroska"),
        Profile("mov", "mov", "video/quicktime", "mov", "mov", H264, AAC, "128k",
                ("-movflags", "+faststart"), "H.264 + AAC in QuickTime"),
        Profile("mp3", "mp3", "audio/mpeg", "mp3", "mp3", None, MP3, "", (),
                "audio only, LAME VBR"),
    )
}


def format_names() -> list[str]:
    return sorted(FORMATS)


def get_profile(fmt: str) -> Profile:
    try:
        return FORMATS[fmt]
    except (KeyError, TypeError):
        raise UnsupportedFormat(
            f"Format {fmt!r} is not supported; choose one of {', '.join(format_names())}."
        ) from None


@dataclass(frozen=True)
class OptionSpec:
    kind: str  # int | number | bool
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    video_only: bool = False
    description: str = ""


# The one definition of the option keys and ranges; the CRD schema must match it.
OPTIONS: dict[str, OptionSpec] = {
    "max_height": OptionSpec("int", 16, 4320, video_only=True,
                             description="scale down to at most this height, keeping aspect"),
    "video_bitrate": OptionSpec("int", 100, 50000, video_only=True,
                                description="target video bitrate in kbit/s"),
    "quality": OptionSpec("int", 0, 100, description="0 smallest .. 100 best; mapped per codec"),
    "audio": OptionSpec("bool", description="keep the audio track (default true)"),
    "start": OptionSpec("number", 0, None, description="skip this many seconds of the input"),
    "duration": OptionSpec("number", 0, None, exclusive_minimum=True,
                           description="convert at most this many seconds"),
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse_value(key: str, spec: OptionSpec, raw: Any) -> Any:
    text = str(raw).strip().lower() if not isinstance(raw, bool) else raw
    if spec.kind == "bool":
        if isinstance(text, bool):
            return text
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InvalidOption(f"Option {key} must be true or false, not {raw!r}.")
    value: float
    try:
        if isinstance(raw, bool):
            raise ValueError
        if spec.kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            value = int(raw) if isinstance(raw, int | float) else int(str(raw).strip())
        else:
            value = float(raw)
    except (TypeError, ValueError):
        kind = "a whole number" if spec.kind == "int" else "a number"
        raise InvalidOption(f"Option {key} must be {kind}, not {raw!r}.") from None
    if not math.isfinite(value):
        raise InvalidOption(f"Option {key} must be a finite number, not {raw!r}.")
    low, high = spec.minimum, spec.maximum
    if low is not None and (value <= low if spec.exclusive_minimum else value < low):
        bound = "greater than" if spec.exclusive_minimum else "at least"
        raise InvalidOption(f"Option {key} must be {bound} {low:g}, not {raw!r}.")
    if high is not None and value > high:
        raise InvalidOption(f"Option {key} must be at most {high:g}, not {raw!r}.")
    return value


def validate_options(fmt: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``options`` for format ``fmt``; return them typed. Raises a FormatError."""
    profile = get_profile(fmt)
    result: dict[str, Any] = {}
    for key, raw in options.items():
        spec = OPTIONS.get(key)
        if spec is None:
            raise InvalidOption(
                f"Unknown option {key!r}; valid options are {', '.join(sorted(OPTIONS))}."
            )
        if spec.video_only and profile.audio_only:
            raise InvalidOption(f"Option {key} does not apply to the audio-only format {fmt}.")
        result[key] = _parse_value(key, spec, raw)
    if profile.audio_only and result.get("audio") is False:
        raise InvalidOption(f"Format {fmt} is audio only, so audio cannot be turned off.")
    if "video_bitrate" in result and "quality" in result:
        raise InvalidOption("Give either video_bitrate or quality, not both.")
    return result


def encode_args(profile: Profile, options: Mapping[str, Any], has_audio: bool) -> list[str]:
    """ffmpeg output arguments (codecs, quality, scaling) for validated ``options``."""
    args: list[str] = []
    quality = options.get("quality")
    if profile.video is not None:
        height = int(options.get("max_height", 0))
        if height:
            # Never upscale; -2 keeps the aspect ratio with an even width, and the height is
            # rounded down to even because 4:2:0 chroma needs even dimensions.
            args += ["-vf", f"scale=w=-2:h='trunc(min(ih,{height})/2)*2'"]
        else:
            args += ["-vf", "scale=w='trunc(iw/2)*2':h='trunc(ih/2)*2'"]
        args += ["-c:v", profile.video.encoder, *profile.video.args]
        if "video_bitrate" in options:
            # VP9's constant-quality mode needs -b:v 0; a bitrate replaces it.
            args = _drop_pair(args, "-b:v")
            args += ["-b:v", f"{int(options['video_bitrate'])}k"]
        else:
            args += profile.video.quality_args(quality)
    else:
        args += ["-vn"]
    if has_audio and options.get("audio", True):
        args += ["-c:a", profile.audio.encoder, *profile.audio.args]
        if profile.audio_bitrate:
            args += ["-b:a", profile.audio_bitrate]
        else:
            args += profile.audio.quality_args(quality if profile.audio_only else None)
    else:
        args += ["-an"]
    return args


def _drop_pair(args: list[str], flag: str) -> list[str]:
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == flag:
            skip = True
            continue
        out.append(a)
    return out
