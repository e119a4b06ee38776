"""The adaptive stream (``hls``): every rendition of the ladder in one ffmpeg run, packaged by
ffmpeg's HLS muxer.

One run, not one per rendition: the input is decoded once and each rendition scaled from the
same frames (bench/ladder.py measures it against one run per rendition). Keyframes are forced
every ``SEGMENT_SECONDS`` in every rendition, so segments start at the same instants and a
player can switch at any boundary. Each rendition is one fragmented MP4 whose fragments are the
segments, addressed by byte ranges (``#EXT-X-BYTERANGE``, HLS version 7): a package is a few
files (master, per rendition a playlist and its media, the audio likewise) whatever the
length, rather than hundreds of segment objects to store, list and sign. The audio is encoded
once, as an audio rendition group that every video rendition refers to.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vidconv import ladder
from vidconv.formats import Profile, encode_args
from vidconv.transcoder import ffmpeg
from vidconv.transcoder.adapt import stream_args
from vidconv.transcoder.errors import BadInput, Retryable
from vidconv.transcoder.probe import MediaInfo, probe, sniff
from vidconv.transcoder.tools import Tools

MASTER = "master.m3u8"
AUDIO = "audio"


def rungs_for(info: MediaInfo, options: Mapping[str, Any]) -> list[ladder.Rung]:
    assert info.video is not None
    return ladder.rungs(info.video.display_size[1], int(options.get("max_height") or 0),
                        int(options.get("video_bitrate") or 0))


def command(tools: Tools, info: MediaInfo, source: Path, folder: Path, profile: Profile,
            options: Mapping[str, Any], max_duration: float, keep_audio: bool) -> list[str]:
    rungs = rungs_for(info, options)
    cmd = ffmpeg.head(tools.ffmpeg, info, source, options)
    cmd += ["-t", f"{ffmpeg.output_limit(options, max_duration):.3f}"]
    cmd += stream_args(profile, info, options, keep_audio, [r.height for r in rungs])
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-dn"]
    # The profile's encoders at its quality; each rendition capped instead of a bitrate.
    cmd += encode_args(profile, {k: v for k, v in options.items() if k != "video_bitrate"},
                       has_audio=keep_audio)
    for n, rung in enumerate(rungs):
        cmd += [f"-maxrate:v:{n}", f"{rung.maxrate}k", f"-bufsize:v:{n}", f"{2 * rung.maxrate}k"]
    cmd += ["-force_key_frames:v", f"expr:gte(t,n_forced*{ladder.SEGMENT_SECONDS})"]
    group = ",agroup:audio" if keep_audio else ""
    streams = [f"v:{n}{group},name:{r.name}" for n, r in enumerate(rungs)]
    if keep_audio:
        streams.append(f"a:0{group},name:{AUDIO}")
    cmd += ["-f", "hls", "-hls_time", str(ladder.SEGMENT_SECONDS), "-hls_playlist_type", "vod",
            "-hls_segment_type", "fmp4", "-hls_flags", "single_file+independent_segments",
            "-master_pl_name", MASTER, "-var_stream_map", " ".join(streams),
            "-hls_segment_filename", f"file:{folder}/%v.mp4", "-y", f"file:{folder}/%v.m3u8"]
    return cmd


def bitrates(playlist: str) -> tuple[int, int]:
    """(peak, average) bits per second of a byte-range media playlist: each segment's bytes
    over its duration, as a validator measures them."""
    peak = total_bits = 0
    total_seconds = 0.0
    seconds: float | None = None
    for line in playlist.splitlines():
        if line.startswith("#EXTINF:"):
            seconds = float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-BYTERANGE:") and seconds:
            bits = 8 * int(line[17:].split("@")[0])
            peak = max(peak, round(bits / seconds))
            total_bits, total_seconds = total_bits + bits, total_seconds + seconds
            seconds = None
    return peak, round(total_bits / total_seconds) if total_seconds else 0


def measured_bandwidth(master: str, folder: Path) -> str:
    """The master with each variant's BANDWIDTH the peak it measures (its video's peak segment
    plus the audio's) and AVERAGE-BANDWIDTH its mean: ffmpeg declares the cap plus 10 %, but a
    segment may hold more than the cap (the encoder's buffer lets it burst), and HLS wants the
    peak bounded."""
    audio = (folder / f"{AUDIO}.m3u8")
    sound = bitrates(audio.read_text()) if audio.is_file() else (0, 0)
    lines = master.splitlines()
    for n, line in enumerate(lines):
        if not line.startswith("#EXT-X-STREAM-INF:") or n + 1 >= len(lines):
            continue
        variant = folder / lines[n + 1].strip()
        if not variant.is_file():
            continue
        peak, mean = bitrates(variant.read_text())
        attributes = [a for a in _attributes(line[18:])
                      if not a.startswith(("BANDWIDTH=", "AVERAGE-BANDWIDTH="))]
        lines[n] = "#EXT-X-STREAM-INF:" + ",".join(
            [f"BANDWIDTH={peak + sound[0]}", f"AVERAGE-BANDWIDTH={mean + sound[1]}",
             *attributes])
    return "\n".join(lines) + "\n"


def _attributes(text: str) -> list[str]:
    """An attribute list split on the commas outside quoted strings."""
    out, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(current)
            current = ""
        else:
            current += ch
    return [*out, current] if current else out


def without_audio_only_variant(master: str) -> str:
    """The master playlist less the variant ffmpeg adds for the audio rendition alone: a
    player short of bandwidth would pick it and show nothing. The audio stays the group every
    video variant names."""
    lines, out, skip = master.splitlines(), [], False
    for line in lines:
        if skip:
            skip = not line.strip() or line.startswith("#")
            continue
        if line.startswith("#EXT-X-STREAM-INF:") and "RESOLUTION=" not in line:
            skip = True
            continue
        out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


def verify(tools: Tools, folder: Path, info: MediaInfo, options: Mapping[str, Any],
           expected: float | None, keep_audio: bool) -> dict[str, Any]:
    """Every rendition is H.264 at its height and as long as promised; the audio one AAC."""
    master = folder / MASTER
    if not master.is_file():
        raise BadInput("conversion_failed", "ffmpeg produced no stream from this input.")
    master.write_text(measured_bandwidth(without_audio_only_variant(master.read_text()),
                                         folder))
    durations = []
    for rung in rungs_for(info, options):
        found = _probe(tools, folder / f"{rung.name}.mp4")
        if found.video is None or found.video.codec != "h264" or found.video.height != rung.height:
            raise Retryable("output_mismatch", f"The {rung.name} rendition is not H.264 at "
                                               f"{rung.height} lines.")
        durations.append(found.duration or 0.0)
    if keep_audio:
        sound = _probe(tools, folder / f"{AUDIO}.mp4")
        if sound.audio is None or sound.audio.codec != "aac":
            raise Retryable("output_mismatch", "The audio rendition is not AAC.")
    duration = min(durations)
    if expected and duration < expected - max(1.0, expected * 0.1):
        raise BadInput("truncated_input",
                       f"Only {duration:.1f} s of the expected {expected:.1f} s could be "
                       "decoded; the input is truncated or damaged.")
    return {"duration": round(duration, 3), "video_codec": "h264",
            "audio_codec": "aac" if keep_audio else None}


def _probe(tools: Tools, path: Path) -> MediaInfo:
    if not path.is_file() or sniff(path) != "mov":
        raise Retryable("output_missing", f"ffmpeg wrote no {path.name}.")
    return probe(tools, path, "mov")
