"""The options a task may carry, which of them each format takes, and their strict validation.

``OPTIONS`` is the one definition of the keys and their ranges (the API's Options model and the
CRD's schema mirror it); ``options_for(fmt)`` is the ones format ``fmt`` takes: no video option
for an audio-only format, no audio bitrate for a lossless one. Within its range a value is
never refused for a codec's sake: the transcoder takes the nearest the codec carries (a channel
count, a sample rate, a bitrate; vidconv.formats has each codec's). That keeps the rules few
enough for the API's OpenAPI document to state them per format (tests/api fuzzes the API with
schemathesis, which expands every choice in a request's schema), so a request the document
allows is never refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vidconv.formats import DEFAULT_PRESET, PRESETS, InvalidOption, Profile, get_profile
from vidconv.outputs import PREVIEW_FORMATS, THUMBNAIL_FORMATS

# The kinds of format (vidconv.formats.Profile.kind) an option may apply to.
MOVING = ("video", "audio", "animation")
VIDEO = ("video",)
SIZED = ("video", "image", "animation")
ALL = ("video", "audio", "image", "animation")


@dataclass(frozen=True)
class OptionSpec:
    kind: str  # int | number | bool | choice
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    kinds: tuple[str, ...] = ALL  # the kinds of format that take it
    description: str = ""
    choices: tuple[str, ...] = ()  # kind "choice": the accepted values


# The one definition of the option keys and ranges; the CRD schema must match it.
OPTIONS: dict[str, OptionSpec] = {
    "max_height": OptionSpec("int", 16, 4320, kinds=SIZED,
                             description="scale down to at most this height, keeping aspect"),
    "video_bitrate": OptionSpec("int", 100, 50000, kinds=VIDEO,
                                description="target video bitrate in kbit/s"),
    "quality": OptionSpec("int", 0, 100, description="0 smallest .. 100 best; mapped per codec "
                                                     "(lossless ones ignore it)"),
    "audio": OptionSpec("bool", kinds=("video", "audio"),
                        description="keep the audio track (default true)"),
    "start": OptionSpec("number", 0, None, description="skip this many seconds of the input "
                                                       "(a picture: the frame there)"),
    "duration": OptionSpec("number", 0, None, exclusive_minimum=True, kinds=MOVING,
                           description="convert at most this many seconds (an animation: at "
                                       "most 30)"),
    "preset": OptionSpec("choice", kinds=VIDEO, choices=PRESETS,
                         description="encoder speed: fast, balanced (default) or quality"),
    "audio_bitrate": OptionSpec("int", 6, 512, kinds=("video", "audio"),
                                description="audio bitrate in kbit/s, or the nearest the codec "
                                            "takes (lossy codecs only)"),
    "channels": OptionSpec("int", 1, 8, kinds=("video", "audio"),
                           description="up- or downmix to this many audio channels, or the "
                                       "nearest count the codec carries"),
    "sample_rate": OptionSpec("int", 8000, 192000, kinds=("video", "audio"),
                              description="resample the audio to this rate (Hz), or the "
                                          "nearest the codec takes"),
    "thumbnail": OptionSpec("choice", kinds=VIDEO, choices=THUMBNAIL_FORMATS,
                            description="also a poster in this format (thumbnail.jpg or .webp): "
                                        "a representative frame, or the one at thumbnail_at"),
    "thumbnail_at": OptionSpec("number", 0, None, kinds=VIDEO,
                               description="the poster's time in the output, in seconds "
                                           "(implies thumbnail=jpg unless given)"),
    "preview": OptionSpec("choice", kinds=VIDEO, choices=PREVIEW_FORMATS,
                          description="also a short animated preview in this format "
                                      "(preview.webp or .gif)"),
    "sprites": OptionSpec("bool", kinds=VIDEO,
                          description="also a sheet of small frames (sprites.jpg) with a WebVTT "
                                      "index (sprites.vtt) for scrubbing previews"),
}


def options_for(fmt: str) -> dict[str, OptionSpec]:
    """The options format ``fmt`` takes."""
    profile = get_profile(fmt)
    return {key: spec for key, spec in OPTIONS.items() if _applies(profile, key, spec)}


def _applies(profile: Profile, key: str, spec: OptionSpec) -> bool:
    if profile.kind not in spec.kinds:
        return False
    if key == "audio_bitrate":
        return profile.audio is not None and profile.audio.bitrates != (0, 0)
    return True


_KIND_NAMES = {"audio": "audio-only", "image": "picture", "animation": "picture"}


def _not_applicable(profile: Profile, key: str) -> str:
    if key == "audio_bitrate" and profile.audio is not None:
        return (f"Option audio_bitrate does not apply to {profile.name}: its {profile.audio.name} "
                "audio is lossless.")
    if key == "duration" and profile.kind == "image":
        return (f"Option duration does not apply to {profile.name}: a {profile.name} is one "
                "frame (the one at start); webp and gif move.")
    kind = _KIND_NAMES.get(profile.kind, profile.kind)
    return f"Option {key} does not apply to the {kind} format {profile.name}."


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse_value(key: str, spec: OptionSpec, raw: Any) -> Any:
    text = str(raw).strip().lower() if not isinstance(raw, bool) else raw
    if spec.kind == "choice":
        if isinstance(text, str) and text in spec.choices:
            return text
        raise InvalidOption(f"Option {key} must be one of {', '.join(spec.choices)}, "
                            f"not {raw!r}.")
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
    allowed = options_for(fmt)
    result: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in OPTIONS:
            raise InvalidOption(
                f"Unknown option {key!r}; valid options are {', '.join(sorted(OPTIONS))}."
            )
        spec = allowed.get(key)
        if spec is None:
            raise InvalidOption(_not_applicable(profile, key))
        result[key] = _parse_value(key, spec, raw)
    if profile.audio_only and result.get("audio") is False:
        raise InvalidOption(f"Format {fmt} is audio only, so audio cannot be turned off.")
    if "video_bitrate" in result and "quality" in result:
        raise InvalidOption("Give either video_bitrate or quality, not both.")
    return result


# What each option is when it is not given (None: not applied; the input decides).
_NO_DEFAULT = {"max_height": None, "video_bitrate": None, "duration": None, "channels": None,
               "sample_rate": None, "thumbnail": None, "thumbnail_at": None, "preview": None,
               "sprites": False}
_KINDS = {"int": "integer", "number": "number", "bool": "boolean", "choice": "string"}
_EXCLUDES = {"video_bitrate": ["quality"], "quality": ["video_bitrate"]}


def describe(fmt: str) -> dict[str, Any]:
    """Format ``fmt`` and the options it takes, with their ranges and defaults: what a client
    (the web page) builds its form from. Turning the audio off is not offered for an
    audio-only format (validate_options refuses it)."""
    profile = get_profile(fmt)
    codec = profile.audio if profile.video is None else profile.video
    assert codec is not None  # every format has a video or an audio codec
    # The quality a video codec defaults to depends on the preset (each its measured point).
    by_preset: dict[str, int] = {}
    if profile.video is not None and "preset" in options_for(fmt):
        for preset in PRESETS:
            point = codec.speed(preset).default_quality
            by_preset[preset] = codec.default_quality if point is None else point
    audio_bitrate = int(profile.audio_bitrate.rstrip("k")) if profile.audio_bitrate else None
    defaults: dict[str, Any] = {
        **_NO_DEFAULT, "audio": True, "start": 0, "preset": DEFAULT_PRESET,
        "audio_bitrate": audio_bitrate,
        # A codec without a quality knob (FLAC, PCM) ignores the option.
        "quality": by_preset.get(DEFAULT_PRESET, codec.default_quality)
        if codec.quality_flag else None}
    options = []
    taken = options_for(fmt)
    for key, spec in taken.items():
        if profile.audio_only and key == "audio":
            continue
        options.append({
            "name": key, "type": _KINDS[spec.kind], "description": spec.description,
            "minimum": spec.minimum, "maximum": spec.maximum,
            "exclusive_minimum": spec.exclusive_minimum, "choices": list(spec.choices) or None,
            "default": defaults[key],
            "default_by_preset": by_preset or None if key == "quality" else None,
            "excludes": [k for k in _EXCLUDES.get(key, []) if k in taken],
        })
    return {"name": profile.name, "extension": profile.extension, "mime_type": profile.mime_type,
            "audio_only": profile.audio_only, "description": profile.notes, "options": options}
