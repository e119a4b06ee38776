"""Identify an input before ffmpeg touches it, and check it against the allow-lists.

ffmpeg never gets to guess the container: we sniff the magic bytes ourselves, map them to one
allowed demuxer and pass it with ``-f``, plus ``-format_whitelist`` (which nested opens inherit)
and ``-protocol_whitelist file``. So a file that is really an HLS or concat playlist (the known
trick for reading local files or reaching the network) is refused before any demuxer opens it.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vidconv.transcoder.errors import BadInput, Retryable
from vidconv.transcoder.tools import Tools

# Demuxers we let ffmpeg use (also the -format_whitelist). Never hls, concat, image2, tty...
DEMUXERS = ("mov", "matroska", "avi", "asf", "mpeg", "mpegts", "flv", "ogg", "mp3", "wav")
FORMAT_WHITELIST = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,asf,mpeg,mpegts,flv,ogg,mp3,wav"

VIDEO_CODECS = frozenset({
    "h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg1video", "mpeg2video", "msmpeg4v2",
    "msmpeg4v3", "wmv1", "wmv2", "wmv3", "vc1", "h263", "flv1", "theora", "mjpeg", "prores",
})
AUDIO_CODECS = frozenset({
    "aac", "mp3", "mp2", "mp1", "opus", "vorbis", "ac3", "eac3", "flac", "alac", "wmav1", "wmav2",
    "wmapro", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_u8",
    "pcm_alaw", "pcm_mulaw", "amr_nb", "amr_wb",
})

PROBE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Stream:
    codec: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class MediaInfo:
    demuxer: str  # what we pass to -f
    format_name: str  # what the demuxer reported
    duration: float | None
    video: Stream | None
    audio: Stream | None


def sniff(path: Path) -> str | None:
    """The allowed demuxer for this file's magic bytes, or None."""
    with path.open("rb") as f:
        head = f.read(4096)
    if len(head) < 12:
        return None
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")):
        return "asf"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or (head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "mp3"  # ID3 tag, or an MPEG audio layer III frame sync
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
    last = stderr.strip().splitlines()[-1:] or ["no detail"]
    return BadInput("invalid_input",
                    f"The input is not a readable video (truncated or corrupt): {last[0][-200:]}")


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
    video = audio = None
    for s in data.get("streams", []):
        kind = s.get("codec_type")
        cover = (s.get("disposition") or {}).get("attached_pic")
        if kind == "video" and video is None and not cover:
            video = Stream(str(s.get("codec_name", "unknown")), int(s.get("width") or 0),
                           int(s.get("height") or 0))
        elif kind == "audio" and audio is None:
            audio = Stream(str(s.get("codec_name", "unknown")))
    return MediaInfo(demuxer, str(fmt.get("format_name", "")), _float(fmt.get("duration")),
                     video, audio)


_INPUT_RE = re.compile(r"^Input #0, (.+), from '", re.M)
_DURATION_RE = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.M)
_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio): (\w+)(.*)$", re.M)
_SIZE_RE = re.compile(r", (\d{1,5})x(\d{1,5})[ ,]")


def _ffmpeg_probe(ffmpeg: str, path: Path, demuxer: str) -> MediaInfo:
    """Parse ``ffmpeg -i`` (no output, so it always exits 1): the header block it prints."""
    proc = _run([ffmpeg, "-hide_banner", "-nostdin", *input_args(demuxer), "-i", f"file:{path}"])
    found = _INPUT_RE.search(proc.stderr)
    if not found:
        raise _unreadable(proc.stderr)
    duration = None
    if m := _DURATION_RE.search(proc.stderr):
        duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    video = audio = None
    for kind, codec, rest in _STREAM_RE.findall(proc.stderr):
        if kind == "Video" and video is None and "(attached pic)" not in rest:
            size = _SIZE_RE.search(rest)
            video = Stream(codec, int(size[1]) if size else 0, int(size[2]) if size else 0)
        elif kind == "Audio" and audio is None:
            audio = Stream(codec)
    return MediaInfo(demuxer, found[1], duration, video, audio)


def _float(value: object) -> float | None:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if result >= 0 else None


def identify(tools: Tools, path: Path) -> MediaInfo:
    """Sniff, probe and allow-list an input; raise BadInput when it can't be converted."""
    demuxer = sniff(path)
    if demuxer is None:
        raise BadInput("unsupported_container",
                       "The input is not a video or audio file in a supported container.")
    info = probe(tools, path, demuxer)
    if info.video is not None and info.video.codec not in VIDEO_CODECS:
        raise BadInput("unsupported_codec",
                       f"The input's video codec {info.video.codec} is not supported.")
    if info.audio is not None and info.audio.codec not in AUDIO_CODECS:
        raise BadInput("unsupported_codec",
                       f"The input's audio codec {info.audio.codec} is not supported.")
    if info.video is None and info.audio is None:
        raise BadInput("no_streams", "The input has no video or audio stream.")
    return info
