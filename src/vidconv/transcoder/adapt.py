"""Fit what the probe found to what the profile's encoders accept, before ffmpeg runs.

Everything here is decided from the probe and the profile's data (vidconv.formats), never by
trying: which streams, then per stream the filters that make it acceptable.

- video: deinterlaced when interlaced; a constant frame rate chosen for containers that need
  one (the nearest the codec allows); held on its last frame when the audio runs on; scaled to
  even sides within the codec's and the user's limits (rotation is already applied by ffmpeg's
  decoder, so sizes are the displayed ones); converted to the pixel format the codec takes.
- audio: gaps and a late start filled with silence (so every container keeps sync); padded
  when the video runs on; clipped through 32-bit integers (a damaged packet can decode to
  values no encoder takes); the channel layout kept when the codec carries it, else matched or
  downmixed to stereo (ffmpeg's matrix: centre and surrounds at -3 dB, LFE dropped); the
  sample rate the nearest the codec takes.
- subtitles: text ones re-encoded where the container takes them, else dropped; bitmap ones
  dropped. Cover art and data streams are never mapped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from vidconv.formats import CHANNELS, Codec, Profile
from vidconv.transcoder.probe import AudioStream, MediaInfo, VideoStream, channel_count

# Rates a player expects, kept exact when the probe's average is within 0.5 % of one.
COMMON_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48",
                                           "50", "60000/1001", "60", "120"))
DEFAULT_RATE = Fraction(30)
# Seconds of difference between the streams' ends worth padding: below, the probe's estimates
# (MPEG-TS durations are off by a frame or two) are as large as what they would correct.
PAD_THRESHOLD = 0.25
SUBTITLE_ENCODERS = {"subrip": "srt", "srt": "srt", "ass": "ass", "ssa": "ass",
                     "webvtt": "webvtt", "mov_text": "mov_text", "text": "srt"}
_ALPHA = re.compile(r"^(yuva|gbrap|ya\d|rgba|bgra|argb|abgr)")


def stream_args(profile: Profile, info: MediaInfo, options: Mapping[str, Any],
                keep_audio: bool, heights: Sequence[int] = ()) -> list[str]:
    """``-map``, filter and per-stream arguments for this input and profile; with ``heights``
    the video once per height (an adaptive ladder's renditions, from one decode)."""
    args: list[str] = []
    both = keep_audio and profile.video is not None and info.video is not None
    shorter, end = _shorter(info, options) if both else (None, 0.0)
    if profile.video is not None and info.video is not None:
        hold = end if shorter == "video" else 0.0
        if not heights:
            args += ["-map", f"0:{info.video.index}"]
            args += ["-filter:v", ",".join(video_filters(profile, profile.video, info.video,
                                                         options, hold))]
        for n, height in enumerate(heights):
            args += ["-map", f"0:{info.video.index}"]
            args += [f"-filter:v:{n}", ",".join(video_filters(
                profile, profile.video, info.video, {**options, "max_height": height}, hold))]
        if profile.variable_frame_rate:
            args += ["-fps_mode", "vfr"]
    if keep_audio and info.audio is not None and profile.audio is not None:
        args += ["-map", f"0:{info.audio.index}"]
        layout = choose_layout(info.audio, profile.audio.layouts, options.get("channels"))
        args += ["-filter:a", ",".join(audio_filters(profile.audio, info.audio, layout,
                                                     end if shorter == "audio" else 0.0,
                                                     options.get("sample_rate")))]
        if channel_count(layout) > 2:
            args += list(profile.audio.surround_args)
    args += subtitle_args(profile, info)
    return args


def video_filters(profile: Profile, codec: Codec, video: VideoStream,
                  options: Mapping[str, Any], hold_until: float = 0.0) -> list[str]:
    filters = []
    if video.interlaced:
        filters.append("bwdif=mode=send_frame:deint=interlaced")
    if not profile.variable_frame_rate:
        rate = choose_rate(video.frame_rate, codec.frame_rates)
        filters.append(f"fps={rate}:start_time=0")  # a late first frame is repeated from 0
    if hold_until:  # the audio runs on: show the last frame until the input's end
        filters.append(f"tpad=stop=-1:stop_mode=clone,trim=end={hold_until:.3f}")
    width, height = output_size(video, int(options.get("max_height") or 0), codec)
    filters.append(f"scale={width}:{height}")
    filters.append(f"format={choose_pix_fmt(video.pix_fmt, codec.pix_fmts)}")
    return filters


def audio_filters(codec: Codec, audio: AudioStream, layout: str,
                  pad_until: float = 0.0, rate: int | None = None) -> list[str]:
    """``rate``: the one asked for, else the input's (either way the nearest the codec takes)."""
    filters = ["aresample=async=1:first_pts=0"]
    if pad_until:  # the video runs on: silence until the input's end
        filters.append(f"apad=whole_dur={pad_until:.3f}")
    filters.append("aformat=sample_fmts=s32")
    final = [f"channel_layouts={layout}"]
    if codec.sample_fmts:
        final.insert(0, "sample_fmts=" + choose_sample_fmt(audio.sample_fmt, codec.sample_fmts))
    rate = choose_sample_rate(rate or audio.sample_rate, codec.sample_rates)
    if rate:
        final.append(f"sample_rates={rate}")
    filters.append("aformat=" + ":".join(final))
    return filters


def subtitle_args(profile: Profile, info: MediaInfo) -> list[str]:
    texts = [s for s in info.subtitles if s.text] if profile.subtitles else []
    if not texts:
        return ["-sn"]
    args: list[str] = []
    for n, sub in enumerate(texts):
        own = SUBTITLE_ENCODERS.get(sub.codec, "")
        encoder = own if own in profile.subtitles else profile.subtitles[0]
        args += ["-map", f"0:{sub.index}", f"-c:s:{n}", encoder]
    return args


def output_size(video: VideoStream, max_height: int, codec: Codec) -> tuple[int, int]:
    """Even sides within ``max_height`` and the codec's limits, aspect kept; scaled up only to
    a codec's minimum size."""
    width, height = video.display_size
    scale = 1.0
    if max_height and height > max_height:
        scale = max_height / height
    if codec.max_width and width * scale > codec.max_width:
        scale = codec.max_width / width
    if codec.max_height and height * scale > codec.max_height:
        scale = codec.max_height / height
    if codec.min_width and width * scale < codec.min_width:
        scale = codec.min_width / width
    if codec.min_height and height * scale < codec.min_height:
        scale = codec.min_height / height
    if scale == 1.0:
        return max(2, width // 2 * 2), max(2, height // 2 * 2)
    if scale > 1.0:  # up to the codec's minimum: round up, never below it
        return math.ceil(width * scale / 2) * 2, math.ceil(height * scale / 2) * 2
    return max(2, round(width * scale / 2) * 2), max(2, int(height * scale + 1e-6) // 2 * 2)


def choose_rate(rate: float | None, allowed: tuple[Fraction, ...]) -> Fraction:
    if rate is None or not 1 <= rate <= 1000:
        value = DEFAULT_RATE
    else:
        near = min(COMMON_RATES, key=lambda r: abs(float(r) - rate))
        value = near if abs(float(near) - rate) <= rate * 0.005 else \
            Fraction(rate).limit_denominator(1001)
    if allowed:
        return min(allowed, key=lambda r: (abs(r - value), -r))
    return value


def choose_pix_fmt(source: str, allowed: tuple[str, ...]) -> str:
    if source in allowed:
        return source
    if _ALPHA.match(source):
        for fmt in allowed:
            if _ALPHA.match(fmt):
                return fmt
    return allowed[0]


# Integer sample formats of at most 16 bits.
_SHALLOW = {"u8", "u8p", "s16", "s16p"}


def choose_sample_fmt(source: str, allowed: tuple[str, ...]) -> str:
    """The codec's sample formats as an aformat list. A codec of integer samples only (FLAC:
    16 or 32 bits) keeps a shallow source at 16 bits rather than padding every sample; codecs
    that take floats get them, so resampling adds no rounding."""
    if source in _SHALLOW and not any(f.startswith(("flt", "dbl")) for f in allowed):
        for fmt in allowed:
            if fmt in _SHALLOW:
                return fmt
    return "|".join(allowed)


def choose_sample_rate(rate: int, allowed: tuple[int, ...]) -> int:
    """The nearest rate the codec takes (the higher of two equally near); 0: keep it."""
    if not allowed:
        return 0
    if rate <= 0:
        return 48000 if 48000 in allowed else allowed[0]
    return min(allowed, key=lambda r: (abs(r - rate), -r))


_BASE = re.compile(r"\((side|back|wide|wide-side|front)\)$")
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1",
                    8: "7.1"}


def choose_layout(audio: AudioStream, allowed: tuple[str, ...], channels: int | None = None
                  ) -> str:
    """The input's layout when the codec takes it, else one like it, else a stereo downmix;
    with ``channels`` asked for, the codec's layout of that many (or the nearest count,
    the fewer of two as near)."""
    if channels:
        return min(allowed, key=lambda a: (abs(CHANNELS[a] - channels), CHANNELS[a]))
    layout = audio.layout or _DEFAULT_LAYOUTS.get(audio.channels, "")
    if layout in allowed:
        return layout
    if audio.channels == 1 and "mono" in allowed:
        return "mono"
    same = [a for a in allowed if channel_count(a) == audio.channels]
    base = _BASE.sub("", layout)
    for candidate in same:  # 5.1(side) -> 5.1, quad(side) -> quad: the same speakers
        if _BASE.sub("", candidate) == base:
            return candidate
    return "stereo"


def _shorter(info: MediaInfo, options: Mapping[str, Any]) -> tuple[str | None, float]:
    """("video" or "audio", end) when that stream stops clearly before the other one (in the
    part of the input being converted): it is then padded to ``end``, the container's end
    (the streams' own durations decide which, not how much: a variable-rate video's is
    often off by a few frames). (None, 0) otherwise."""
    video, audio = info.video, info.audio
    if (video is None or audio is None or video.duration is None or audio.duration is None
            or not info.duration):
        return None, 0.0
    start = float(options.get("start") or 0)
    end = start + float(options["duration"]) if options.get("duration") else float("inf")

    def length(begin: float | None, duration: float) -> float:
        return max(0.0, min((begin or 0.0) + duration, end) - start)

    difference = length(audio.start, audio.duration) - length(video.start, video.duration)
    if abs(difference) <= PAD_THRESHOLD:
        return None, 0.0
    return "video" if difference > 0 else "audio", length(0.0, info.duration)
