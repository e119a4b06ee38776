"""Output formats: one profile per target, each codec with what it accepts.

Shared by the API (which formats exist, MIME types), the operator/CRD (the same enum) and the
transcoder (the ffmpeg arguments); the options a user may give, and which apply to which format,
are vidconv.options. Profiles are chosen so a 1280x720 30 fps input converts at 1x real time or
faster on 2 cores (docs/formats.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any


class FormatError(ValueError):
    """The requested format or an option is not acceptable (permanent: exit code 2)."""

    code = "invalid_request"


class UnsupportedFormat(FormatError):
    code = "unsupported_format"


class InvalidOption(FormatError):
    code = "invalid_option"


@dataclass(frozen=True)
class Speed:
    """One point of a codec's speed/efficiency trade-off, chosen by the ``preset`` option."""

    args: tuple[str, ...] = ()
    default_quality: int | None = None  # the quality (0..100) this point defaults to


@dataclass(frozen=True)
class Codec:
    """One encoder: its arguments, how ``quality`` maps onto it, and what it accepts.

    What it accepts is data, so the transcoder adapts every input to it from the probe
    (vidconv.transcoder.adapt) rather than by trial: pixel formats and frame rates for video,
    channel layouts, sample rates and sample formats for audio. The first pixel format is the
    one written unless the input's own (or its alpha) is in the list.
    """

    encoder: str  # ffmpeg encoder name (-c:v / -c:a)
    name: str  # codec name as ffprobe reports it in the output
    args: tuple[str, ...] = ()  # fixed encoder arguments
    quality_flag: str = ""  # e.g. -crf, -q:v; empty: no quality knob
    quality_best: int = 0  # flag value at quality=100
    quality_worst: int = 0  # flag value at quality=0
    default_quality: int = 60
    presets: tuple[tuple[str, Speed], ...] = ()  # preset name -> speed point
    # video
    pix_fmts: tuple[str, ...] = ("yuv420p",)
    frame_rates: tuple[Fraction, ...] = ()  # empty: any rate
    max_width: int = 0  # 0: no limit beyond the input limits
    max_height: int = 0
    min_width: int = 0  # smaller pictures are scaled up to this
    min_height: int = 0
    # audio
    layouts: tuple[str, ...] = ("mono", "stereo")
    surround_args: tuple[str, ...] = ()  # extra arguments for more than two channels
    sample_rates: tuple[int, ...] = ()  # empty: any rate
    sample_fmts: tuple[str, ...] = ()
    bitrates: tuple[int, int] = (0, 0)  # kbit/s -b:a takes; (0, 0): lossless
    bitrate_steps: tuple[int, ...] = ()  # the only bitrates it takes, when it has such a list

    def nearest_bitrate(self, kbits: int) -> int:
        """``kbits`` within the codec's range, on one of its steps if it has them."""
        low, high = self.bitrates
        kbits = min(max(kbits, low), high)
        if self.bitrate_steps:
            return min(self.bitrate_steps, key=lambda step: (abs(step - kbits), step))
        return kbits

    def speed(self, preset: str | None) -> Speed:
        found = dict(self.presets)
        return found.get(preset or DEFAULT_PRESET) or found.get(DEFAULT_PRESET) or Speed()

    def quality_args(self, quality: int | None, preset: str | None = None) -> list[str]:
        if not self.quality_flag:
            return []
        default = self.speed(preset).default_quality
        q = quality if quality is not None else (
            default if default is not None else self.default_quality)
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
    audio: Codec | None  # None: a picture
    audio_bitrate: str = ""  # e.g. "128k"; empty: the codec's quality flag decides
    muxer_args: tuple[str, ...] = ()
    notes: str = ""
    # The container keeps each frame's time (else a constant rate is chosen from the probe).
    variable_frame_rate: bool = True
    # Subtitle encoders the container takes (text subtitles are re-encoded to the first one
    # unless theirs is listed); empty: subtitles are dropped.
    subtitles: tuple[str, ...] = ()
    # video | audio | image (a still) | animation (moves: gif; webp when given a duration)
    kind: str = "video"
    moving: Codec | None = None  # kind animation: the codec of a picture that moves
    package: str = ""  # "hls": many files (vidconv.ladder), the main one a master playlist

    @property
    def audio_only(self) -> bool:
        return self.video is None

    @property
    def picture(self) -> bool:
        return self.kind in ("image", "animation")


PRESETS = ("fast", "balanced", "quality")
DEFAULT_PRESET = "balanced"
# MPEG-2's own frame rates (23.976, 24, 25, 29.97, 30, 50, 59.94, 60): what its players expect.
MPEG2_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "50",
                                          "60000/1001", "60"))
PCM_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
# The AAC channel configurations (ISO 14496-3 1..7), as ffmpeg names them.
AAC_LAYOUTS = ("mono", "stereo", "3.0", "4.0", "5.0", "5.1", "7.1")
# Opus channel mapping family 1 (the Vorbis order) covers 1..8 channels in these layouts.
OPUS_LAYOUTS = ("mono", "stereo", "3.0", "quad", "5.0", "5.1", "6.1", "7.1")
# How many channels each layout named above has (the ``channels`` option picks by count).
CHANNELS = {"mono": 1, "stereo": 2, "3.0": 3, "4.0": 4, "quad": 4, "5.0": 5, "5.1": 6, "6.1": 7,
            "7.1": 8}
# Lossless targets keep any common rate up to studio masters' 192 kHz.
LOSSLESS_RATES = (192000, 176400, *PCM_RATES)

# Speed points and defaults measured with bench/quality.py (docs/formats.md, 20 s of detailed
# 720p): "balanced" (the default) is the best quality per bit that still converts 720p at
# >= 1.5x real time on 2 cores; "fast" and "quality" are the measured points either side.
# x264 "faster" CRF 24 matches "veryfast" CRF 23 (VMAF 89.7 vs 89.3) with 10 % fewer bits,
# at 2.2x; "medium" is 1.4-1.7x, for those who ask.
H264 = Codec("libx264", "h264", (), "-crf", 16, 40, 67,
             presets=(("fast", Speed(("-preset", "veryfast"), 71)),  # CRF 23
                      ("balanced", Speed(("-preset", "faster"), 67)),  # CRF 24
                      ("quality", Speed(("-preset", "medium"), 71))),  # CRF 23
             pix_fmts=("yuv420p",))
# ffmpeg's AAC encoder: transparent-ish from 128 kbit/s stereo; below 16 it is unusable, and
# above 512 (for up to 8 channels) it only spends bits.
AAC = Codec("aac", "aac", layouts=AAC_LAYOUTS, sample_rates=PCM_RATES[:-1] + (8000, 7350),
            sample_fmts=("fltp",), bitrates=(16, 512))
# The adaptive ladder encodes 1.7 times the pixels of one 720p rendition (720p + 480p + 360p):
# a step faster than mp4 at each point keeps it above 1x real time on 2 cores.
H264_LADDER = Codec("libx264", "h264", (), "-crf", 16, 40, 71,
                    presets=(("fast", Speed(("-preset", "superfast"), 71)),
                             ("balanced", Speed(("-preset", "veryfast"), 71)),  # CRF 23
                             ("quality", Speed(("-preset", "faster"), 67))),
                    pix_fmts=("yuv420p",))
# VP9: libvpx's "good" deadline spends a third fewer bits but runs at 0.3-0.7x; in realtime
# mode cpu-used 5..8 measure the same quality per bit, so fast and balanced are cpu-used 8
# (3.8x) and quality is cpu-used 5 (2x, a little better). CRF 37 (quality 45) gives mp4's
# VMAF; the earlier CRF 33 spent 40 % more bits for +3.
VP9 = Codec("libvpx-vp9", "vp9", ("-row-mt", "1", "-b:v", "0"), "-crf", 15, 55, 45,
            presets=(("fast", Speed(("-deadline", "realtime", "-cpu-used", "8"), 45)),
                     ("balanced", Speed(("-deadline", "realtime", "-cpu-used", "8"), 45)),
                     ("quality", Speed(("-deadline", "realtime", "-cpu-used", "5"), 45))),
            pix_fmts=("yuv420p", "yuva420p"))
# SVT-AV1 preset 10: 20-25 % fewer bits than x264 "faster" for the same VMAF, at ~2x.
# It takes no picture under 64x64 (smaller ones are scaled up to that).
AV1 = Codec("libsvtav1", "av1", (), "-crf", 20, 55, 57,
            presets=(("fast", Speed(("-preset", "12"), 57)),  # CRF 35
                     ("balanced", Speed(("-preset", "10"), 57)),
                     ("quality", Speed(("-preset", "9"), 57))),
            pix_fmts=("yuv420p",), min_width=64, min_height=64)
# libopus takes 6..256 kbit/s per channel; 510 is its ceiling for a stream. It encodes at these
# rates, but every Opus decoder plays at 48 kHz (RFC 7845): that is what a probe reports.
OPUS = Codec("libopus", "opus", layouts=OPUS_LAYOUTS, surround_args=("-mapping_family", "1"),
             sample_rates=(48000, 24000, 16000, 12000, 8000), sample_fmts=("flt", "s16"),
             bitrates=(6, 510))
# The MPEG-era codecs take a fixed quantiser (-q:v 2 best .. 31 worst): fast, predictable size.
# -q:v 5 (quality 90) keeps VMAF >= 93 with ~23 % fewer bits than -q:v 4; "quality" adds
# rate-distortion macroblock decisions and trellis quantisation at -q:v 4.
QUANTISER = (("fast", Speed((), 90)), ("balanced", Speed((), 90)))
RD = ("-mbd", "rd", "-trellis", "1")
MPEG4 = Codec("mpeg4", "mpeg4", ("-vtag", "xvid"), "-q:v", 2, 31, 90,
              presets=(*QUANTISER, ("quality", Speed((*RD, "-flags", "+mv4+aic"), 93))))
# MP3 and MP2 get the MPEG-1 rates only: every player takes them, 192 kbit/s MP2 is valid at
# each, and LAME's delay and padding stay ~30 ms (at 8 kHz they add ~0.2 s to the length).
MPEG1_AUDIO_RATES = (48000, 44100, 32000)
MP3 = Codec("libmp3lame", "mp3", (), "-q:a", 0, 9, 78, sample_rates=MPEG1_AUDIO_RATES,
            sample_fmts=("fltp", "s32p", "s16p"), bitrates=(32, 320))  # MPEG-1 layer III's
# MPEG-2 High level stops at 1920x1152, and ffmpeg's encoder refuses sides of 4096.
MPEG2 = Codec("mpeg2video", "mpeg2video", (), "-q:v", 2, 31, 90,
              presets=(*QUANTISER, ("quality", Speed(RD, 93))),
              frame_rates=MPEG2_RATES, max_width=1920, max_height=1152)
MP2 = Codec("mp2", "mp2", sample_rates=MPEG1_AUDIO_RATES, sample_fmts=("s16",), bitrates=(32, 384),
            bitrate_steps=(32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384))
WMV2 = Codec("wmv2", "wmv2", (), "-q:v", 2, 31, 90,
             presets=(*QUANTISER, ("quality", Speed(RD, 93))))
# WMA v2 refuses more than 2 channels and rates above 48 kHz (it declares neither).
WMA2 = Codec("wmav2", "wmav2", sample_rates=(48000, 44100, 32000, 22050, 16000, 11025, 8000),
             sample_fmts=("fltp",), bitrates=(32, 320))
# Lossless: FLAC keeps 24-bit sources in 32-bit samples (it stores only the bits used), WAV is
# 16-bit PCM, which every player reads.
FLAC = Codec("flac", "flac", layouts=OPUS_LAYOUTS, sample_rates=LOSSLESS_RATES,
             sample_fmts=("s16", "s32"))
PCM = Codec("pcm_s16le", "pcm_s16le", layouts=OPUS_LAYOUTS, sample_rates=LOSSLESS_RATES,
            sample_fmts=("s16",))
# Pictures. JPEG at -q:v 3 (quality 90) is visually clean at a third of -q:v 2's size; WebP
# takes libwebp's own 0..100 scale (75 its default); PNG and GIF have no quality knob. GIF gets
# a palette made for the clip (palettegen) and ordered dithering, which compresses best.
MJPEG = Codec("mjpeg", "mjpeg", (), "-q:v", 2, 31, 97, pix_fmts=("yuvj420p",))
PNG = Codec("png", "png", pix_fmts=("rgb24", "rgba"))
WEBP = Codec("libwebp", "webp", (), "-quality", 100, 0, 75, pix_fmts=("yuv420p", "yuva420p"))
WEBP_ANIM = Codec("libwebp_anim", "webp", ("-loop", "0"), "-quality", 100, 0, 75,
                  pix_fmts=("yuv420p", "yuva420p"))
GIF = Codec("gif", "gif", ("-loop", "0"), pix_fmts=("pal8",))

FORMATS: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("mp4", "mp4", "video/mp4", "mp4", "mp4", H264, AAC, "128k",
                ("-movflags", "+faststart"), "H.264 + AAC, index at the front for streaming",
                subtitles=("mov_text",)),
        Profile("webm", "webm", "video/webm", "webm", "webm", VP9, OPUS, "96k", (),
                "VP9 (realtime settings) + Opus", subtitles=("webvtt",)),
        Profile("avi", "avi", "video/x-msvideo", "avi", "avi", MPEG4, MP3, "", (),
                "MPEG-4 Part 2 (Xvid tag) + MP3", variable_frame_rate=False),
        Profile("mpeg", "mpeg", "video/mpeg", "mpeg", "mpeg", MPEG2, MP2, "192k", (),
                "MPEG-2 video + MP2 in an MPEG program stream", variable_frame_rate=False),
        Profile("wmv", "wmv", "video/x-ms-wmv", "asf", "asf", WMV2, WMA2, "128k", (),
                "Windows Media Video 8 + WMA2 in ASF", variable_frame_rate=False),
        Profile("mkv", "mkv", "video/x-matroska", "matroska", "matroska", H264, AAC, "128k", (),
                "H.264 + AAC in Matroska", subtitles=("srt", "ass", "webvtt")),
        Profile("mov", "mov", "video/quicktime", "mov", "mov", H264, AAC, "128k",
                ("-movflags", "+faststart"), "H.264 + AAC in QuickTime",
                subtitles=("mov_text",)),
        Profile("mp3", "mp3", "audio/mpeg", "mp3", "mp3", None, MP3, "", (),
                "audio only, LAME VBR", kind="audio"),
        Profile("m4a", "m4a", "audio/mp4", "ipod", "mp4", None, AAC, "160k",
                ("-movflags", "+faststart"), "audio only, AAC in MP4 (the iTunes brand)",
                kind="audio"),
        Profile("opus", "opus", "audio/ogg", "opus", "ogg", None, OPUS, "128k", (),
                "audio only, Opus in Ogg", kind="audio"),
        Profile("flac", "flac", "audio/flac", "flac", "flac", None, FLAC, "", (),
                "audio only, lossless", kind="audio"),
        Profile("wav", "wav", "audio/wav", "wav", "wav", None, PCM, "", (),
                "audio only, 16-bit PCM", kind="audio"),
        Profile("jpg", "jpg", "image/jpeg", "image2", "image2", MJPEG, None, "",
                ("-update", "1"), "a poster: one frame", kind="image"),
        Profile("png", "png", "image/png", "image2", "image2", PNG, None, "",
                ("-update", "1"), "a poster: one frame, lossless", kind="image"),
        Profile("webp", "webp", "image/webp", "webp", "webp", WEBP, None, "", (),
                "a poster, or with a duration an animation", kind="animation",
                moving=WEBP_ANIM),
        Profile("gif", "gif", "image/gif", "gif", "gif", GIF, None, "", (),
                "an animation", kind="animation", moving=GIF),
        Profile("hls", "m3u8", "application/vnd.apple.mpegurl", "hls", "hls", H264_LADDER, AAC,
                "128k", (), "an adaptive stream: an H.264 ladder in fMP4, one AAC rendition",
                package="hls"),
        Profile("av1", "mp4", "video/mp4", "mp4", "mp4", AV1, AAC, "128k",
                ("-movflags", "+faststart"), "AV1 (SVT-AV1) + AAC in MP4",
                subtitles=("mov_text",)),
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


def expected_duration(input_duration: float | None, options: Mapping[str, Any]) -> float | None:
    """Seconds of output a conversion of an input this long makes with these options (trim).

    The transcoder's progress is out_time over this; the API's ETA is what is left of it over
    the speed. None when neither the input's duration nor a ``duration`` option is known.
    """
    if input_duration is None:
        duration = options.get("duration")
        return None if duration is None else float(duration)
    remaining = max(0.0, input_duration - float(options.get("start", 0)))
    if "duration" in options:
        return min(remaining, float(options["duration"]))
    return remaining


def encode_args(profile: Profile, options: Mapping[str, Any], has_audio: bool) -> list[str]:
    """ffmpeg output arguments (encoders, speed, quality) for validated ``options``.

    Filters (scaling, pixel format, channel layout, rates) depend on the input as well: the
    transcoder adds them from the probe (vidconv.transcoder.adapt).
    """
    args: list[str] = []
    quality = options.get("quality")
    preset = options.get("preset")
    audio_bitrate = options.get("audio_bitrate")
    if profile.video is not None:
        video = profile.video
        args += ["-c:v", video.encoder, *video.speed(preset).args, *video.args]
        if "video_bitrate" in options:
            # VP9's constant-quality mode needs -b:v 0; a bitrate replaces it.
            args = _drop_pair(args, "-b:v")
            args += ["-b:v", f"{int(options['video_bitrate'])}k"]
        else:
            args += video.quality_args(quality, preset)
    else:
        args += ["-vn"]
    if has_audio and options.get("audio", True) and profile.audio is not None:
        args += ["-c:a", profile.audio.encoder, *profile.audio.args]
        if audio_bitrate:  # vidconv.options allows it only where the codec has a bitrate
            args += ["-b:a", f"{profile.audio.nearest_bitrate(int(audio_bitrate))}k"]
        elif profile.audio_bitrate:
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
