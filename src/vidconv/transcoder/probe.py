"""Identify an input before ffmpeg touches it, and check it against the allow-lists.

ffmpeg never gets to guess the container: we sniff the magic bytes ourselves, map them to one
allowed demuxer and pass it with ``-f``, plus ``-format_whitelist`` (which nested opens inherit)
and ``-protocol_whitelist file``. So a file that is really an HLS or concat playlist (the known
trick for reading local files or reaching the network) is refused before any demuxer opens it.

The probe also reads what the conversion has to adapt (vidconv.transcoder.adapt): pixel format,
interlacing, rotation, frame rate, channel layout, sample rate, where each stream starts and
ends, and which subtitle streams there are. Cover art and data streams are never the video.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidconv.transcoder.errors import BadInput, Retryable
from vidconv.transcoder.tools import Tools, alternate_for

# Demuxers we let ffmpeg use (also the -format_whitelist). Never hls, concat, image2, tty...
# (image2 reads numbered sequences of *other* files; gif and webp_anim read only this one.)
DEMUXERS = ("mov", "matroska", "avi", "asf", "mpeg", "mpegts", "mxf", "flv", "ogg", "gif",
            "webp_anim", "mp3", "aac", "flac", "wav", "aiff")
FORMAT_WHITELIST = ",".join(("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm",
                             *DEMUXERS[2:]))

VIDEO_CODECS = frozenset({
    "h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg1video", "mpeg2video", "msmpeg4v1",
    "msmpeg4v2", "msmpeg4v3", "wmv1", "wmv2", "wmv3", "vc1", "h263", "h263p", "flv1", "vp6f",
    "vp6a", "theora", "mjpeg", "prores", "dnxhd", "dvvideo", "ffv1", "gif", "webp_anim", "png",
    "qtrle", "rawvideo", "v210", "huffyuv", "ffvhuff", "utvideo", "cinepak", "svq1", "svq3",
})
AUDIO_CODECS = frozenset({
    "aac", "aac_latm", "mp3", "mp2", "mp1", "opus", "vorbis", "ac3", "eac3", "dts", "truehd",
    "mlp", "flac", "alac", "wmav1", "wmav2", "wmapro", "wmalossless", "amr_nb", "amr_wb",
    "nellymoser", "speex", "adpcm_swf", "adpcm_ima_wav", "adpcm_ms", "adpcm_ima_qt", "gsm_ms",
    "pcm_s8", "pcm_u8", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le",
    "pcm_s32be", "pcm_f32le", "pcm_f32be", "pcm_f64le", "pcm_alaw", "pcm_mulaw",
    "pcm_bluray", "pcm_dvd", "s302m",
})
# Subtitles that are text: they can be re-encoded into the target container's subtitle format.
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})

PROBE_TIMEOUT = 60.0


@dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str
    width: int = 0
    height: int = 0
    pix_fmt: str = ""
    interlaced: bool = False
    rotation: int = 0  # degrees, a multiple of 90; ffmpeg applies it while decoding
    frame_rate: float | None = None  # average frames per second
    start: float | None = None
    duration: float | None = None

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown, i.e. after the rotation is applied."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int = 0
    layout: str = ""  # ffmpeg's name, e.g. "stereo", "5.1(side)"; "" when unknown
    sample_rate: int = 0
    start: float | None = None
    duration: float | None = None
    sample_fmt: str = ""  # e.g. "s16", "fltp"; "" when unknown


@dataclass(frozen=True)
class SubtitleStream:
    index: int
    codec: str

    @property
    def text(self) -> bool:
        return self.codec in TEXT_SUBTITLES


@dataclass(frozen=True)
class MediaInfo:
    demuxer: str  # what we pass to -f
    format_name: str  # what the demuxer reported
    duration: float | None
    video: VideoStream | None
    audio: AudioStream | None
    subtitles: tuple[SubtitleStream, ...] = ()
    start: float | None = None  # the container's start time; stream starts are relative to 0


def sniff(path: Path) -> str | None:
    """The allowed demuxer for this file's magic bytes, or None."""
    with path.open("rb") as f:
        head = f.read(4096)
    if len(head) < 12:
        return None
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mov"  # also MP4, M4A, 3GP
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"RIFF") and head[8:16] == b"WEBPVP8X" and head[20] & 0x02:
        return "webp_anim"  # animated WebP (the VP8X header's animation flag); stills are not

    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head.startswith(bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")):
        return "asf"
    if head.startswith(bytes.fromhex("060e2b34020501010d010201")):
        return "mxf"  # the header partition pack's key
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    if len(head) > 388 and head[4] == head[196] == head[388] == 0x47:
        return "mpegts"  # M2TS (Blu-ray, AVCHD): a 4-byte timestamp before each packet
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"ID3") or (head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "mp3"  # ID3 tag, or an MPEG audio layer III frame sync
    if head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # an ADTS frame sync (layer bits 00)
    return None


def input_args(demuxer: str) -> list[str]:
    """The arguments that pin how ffmpeg/ffprobe may open an input."""
    return ["-protocol_whitelist", "file", "-format_whitelist", FORMAT_WHITELIST, "-f", demuxer]


def probe(tools: Tools, path: Path, demuxer: str) -> MediaInfo:
    if tools.ffprobe:
        return _ffprobe(tools.ffprobe, path, demuxer)
    return _ffmpeg_probe(tools.ffmpeg, path, demuxer)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BadInput("probe_timeout", "Reading the input's headers took too long.") from None
    except OSError as exc:
        raise Retryable("ffmpeg_missing", f"Could not run {cmd[0]}: {exc}.") from exc


def _unreadable(stderr: str) -> BadInput:
    return BadInput("invalid_input",
                    "The input is not a readable video or audio file: it is truncated or "
                    "corrupt.", detail=stderr.strip()[-2000:])


def _ffprobe(ffprobe: str, path: Path, demuxer: str) -> MediaInfo:
    cmd = [ffprobe, "-v", "error", *input_args(demuxer), "-show_format", "-show_streams",
           "-of", "json", f"file:{path}"]
    proc = _run(cmd)
    if proc.returncode != 0:
        raise _unreadable(proc.stderr)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise _unreadable(proc.stderr) from None
    fmt = data.get("format") or {}
    origin = _float(fmt.get("start_time"))
    video: VideoStream | None = None
    audio: AudioStream | None = None
    subtitles: list[SubtitleStream] = []
    for s in data.get("streams", []):
        kind, index = s.get("codec_type"), int(s.get("index", 0))
        codec = str(s.get("codec_name", "unknown"))
        start = _relative(_float(s.get("start_time")), origin)
        duration = _float(s.get("duration")) or _clock((s.get("tags") or {}).get("DURATION"))
        cover = (s.get("disposition") or {}).get("attached_pic")
        if kind == "video" and video is None and not cover and int(s.get("width") or 0) > 0:
            video = VideoStream(
                index, codec, int(s.get("width") or 0), int(s.get("height") or 0),
                str(s.get("pix_fmt") or ""),
                str(s.get("field_order") or "progressive") not in ("progressive", "unknown"),
                _rotation(s), _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate")),
                start, duration)
        elif kind == "audio" and audio is None and int(s.get("channels") or 0) > 0:
            audio = AudioStream(index, codec, int(s.get("channels") or 0),
                                str(s.get("channel_layout") or ""),
                                int(s.get("sample_rate") or 0), start, duration,
                                str(s.get("sample_fmt") or ""))
        elif kind == "subtitle":
            subtitles.append(SubtitleStream(index, codec))
    return MediaInfo(demuxer, str(fmt.get("format_name", "")), _float(fmt.get("duration")),
                     video, audio, tuple(subtitles), origin)


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return _quarter(side["rotation"])
    return _quarter((stream.get("tags") or {}).get("rotate", 0))


def _quarter(value: object) -> int:
    try:
        return round(float(value) / 90) % 4 * 90  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


_INPUT_RE = re.compile(r"^Input #0, (.+), from '", re.M)
_DURATION_RE = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)(?:, start: (-?[\d.]+))?",
                          re.M)
_STREAM_RE = re.compile(r"^\s*Stream #0:(\d+)\S*: (Video|Audio|Subtitle): (\w+)(.*)$")
_SIZE_RE = re.compile(r"^(\d{1,5})x(\d{1,5})\b")
_ROTATION_RE = re.compile(r"(?:displaymatrix|Display Matrix): rotation of (-?[\d.]+) degrees")


def _fields(rest: str) -> list[str]:
    """The comma-separated fields of a stream line, commas inside parentheses kept."""
    out, depth, current = [], 0, ""
    for ch in rest:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    out.append(current.strip())
    return out


def _ffmpeg_probe(ffmpeg: str, path: Path, demuxer: str) -> MediaInfo:
    """Parse ``ffmpeg -i`` (no output, so it always exits 1): the header block it prints.

    Streams' own start times and durations are not all printed: without ffprobe, audio that
    outlasts the video is not padded (the output is still as long as the input).
    """
    proc = _run([ffmpeg, "-hide_banner", "-nostdin", *input_args(demuxer), "-i", f"file:{path}"])
    found = _INPUT_RE.search(proc.stderr)
    if not found:
        raise _unreadable(proc.stderr)
    duration = origin = None
    if m := _DURATION_RE.search(proc.stderr):
        duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        origin = _float(m[4])
    video: VideoStream | None = None
    audio: AudioStream | None = None
    subtitles: list[SubtitleStream] = []
    current: VideoStream | None = None
    for line in proc.stderr.splitlines():
        rotation = _ROTATION_RE.search(line)
        if rotation and current is not None and current is video:
            video = current = VideoStream(**{**current.__dict__,
                                             "rotation": _quarter(rotation[1])})
            continue
        m = _STREAM_RE.match(line)
        if not m:
            continue
        index, kind, codec, rest = int(m[1]), m[2], m[3], m[4]
        fields = _fields(rest)
        start = None
        for f in fields:
            if f.startswith("start "):
                start = _relative(_float(f[6:]), origin)
        current = None
        if kind == "Video" and video is None and "(attached pic)" not in rest:
            size = next((s for f in fields if (s := _SIZE_RE.match(f))), None)
            if size is None:
                continue
            pix = fields[1] if len(fields) > 1 and not _SIZE_RE.match(fields[1]) else ""
            fps = next((_float(f[:-4]) for f in fields if f.endswith(" fps")), None)
            video = current = VideoStream(
                index, codec, int(size[1]), int(size[2]), pix.split("(")[0],
                any(w in pix for w in ("top first", "bottom first", "coded first")),
                0, fps, start)
        elif kind == "Audio" and audio is None:
            rate = next((int(f[:-3]) for f in fields if re.fullmatch(r"\d+ Hz", f)), 0)
            layout = fields[2] if len(fields) > 2 else ""
            channels = channel_count(layout)
            sample_fmt = fields[3].split()[0] if len(fields) > 3 and fields[3] else ""
            if channels:
                audio = AudioStream(index, codec, channels,
                                    "" if layout.endswith("channels") else layout, rate, start,
                                    sample_fmt=sample_fmt)
        elif kind == "Subtitle":
            subtitles.append(SubtitleStream(index, codec))
    return MediaInfo(demuxer, found[1], duration, video, audio, tuple(subtitles), origin)


_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "3.0(back)": 3, "4.0": 4,
                    "quad": 4, "quad(side)": 4, "3.1": 4, "5.0": 5, "5.0(side)": 5, "4.1": 5,
                    "5.1": 6, "5.1(side)": 6, "6.0": 6, "6.0(front)": 6, "hexagonal": 6,
                    "6.1": 7, "6.1(back)": 7, "6.1(front)": 7, "7.0": 7, "7.0(front)": 7,
                    "7.1": 8, "7.1(wide)": 8, "7.1(wide-side)": 8, "octagonal": 8,
                    "downmix": 2}


def channel_count(layout: str) -> int:
    """How many channels an ffmpeg layout name (or \"6 channels\") has; 0 if unknown."""
    if m := re.fullmatch(r"(\d+) channels.*", layout):
        return int(m[1])
    return _LAYOUT_CHANNELS.get(layout, 0)


def _float(value: object) -> float | None:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) != float("inf") else None


def _relative(start: float | None, origin: float | None) -> float | None:
    if start is None:
        return None
    return max(0.0, start - (origin or 0.0))


def _clock(value: object) -> float | None:
    """Matroska's DURATION tag, ``HH:MM:SS.nnnnnnnnn``."""
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", str(value or ""))
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None


def _rate(value: object) -> float | None:
    num, _, den = str(value or "").partition("/")
    try:
        rate = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return rate if 0 < rate < 1000 else None


def identify(tools: Tools, path: Path) -> tuple[Tools, MediaInfo]:
    """Sniff, probe and allow-list an input; raise BadInput when it can't be converted.

    Returns the tools to convert it with: animated WebP needs an ffmpeg 8 decoder, so when
    the configured ffmpeg is older and the imageio-ffmpeg build is installed, that one.
    """
    demuxer = sniff(path)
    if demuxer is None:
        raise BadInput("unsupported_container",
                       "The input is not a video or audio file in a supported container.")
    if demuxer == "webp_anim":
        tools, info = _probe_webp(tools, path)
    else:
        info = probe(tools, path, demuxer)
    if info.video is not None and info.video.codec not in VIDEO_CODECS:
        raise BadInput("unsupported_codec",
                       f"The input's video codec {info.video.codec} is not supported.")
    if info.audio is not None and info.audio.codec not in AUDIO_CODECS:
        raise BadInput("unsupported_codec",
                       f"The input's audio codec {info.audio.codec} is not supported.")
    if info.video is None and info.audio is None:
        raise BadInput("no_streams", "The input has no video or audio stream.")
    return tools, info


def _probe_webp(tools: Tools, path: Path) -> tuple[Tools, MediaInfo]:
    """Animated WebP has a demuxer and decoder from ffmpeg 8 on: the configured ffmpeg's
    if it is that new, else imageio-ffmpeg's static build when it is installed."""
    for candidate in (tools, alternate_for(tools)):
        if candidate is None:
            continue
        try:
            info = probe(candidate, path, "webp_anim")
        except BadInput:
            continue
        if info.video is not None:
            return candidate, info
    raise BadInput("unsupported_codec", "Animated WebP needs ffmpeg 8 or newer to decode, and "
                                        "this converter's ffmpeg is older.")
