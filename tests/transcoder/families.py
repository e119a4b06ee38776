"""Generated files of the kinds people upload: cameras, phones, broadcast, editing, archives.

Each family is 1 s of lavfi test pattern and tone, 160x120, in the container and codecs that kind
of file has, with the trait that makes it hard to convert (5.1 audio, 96 kHz, 10-bit 4:2:2,
4:4:4, interlacing, rotation, variable frame rate, audio starting late, odd sizes, alpha,
subtitles, cover art, timecode tracks). Made once per test session.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ffmpeg_path

QUIET = ("-hide_banner", "-loglevel", "error", "-y")


def _video(size: str = "160x120", rate: int = 25, seconds: float = 1.0) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def _audio(rate: int = 48000, layout: str = "mono", seconds: float = 1.0) -> list[str]:
    return ["-f", "lavfi", "-i",
            f"sine=frequency=440:sample_rate={rate}:duration={seconds},"
            f"aformat=channel_layouts={layout}"]


@dataclass(frozen=True)
class Family:
    name: str
    ext: str
    inputs: tuple[str, ...]  # ffmpeg input arguments (lavfi sources)
    output: tuple[str, ...]  # codec arguments
    audio: bool = True
    channels: int = 1
    sample_rate: int = 48000
    size: tuple[int, int] = (160, 120)  # as displayed: what the output should have
    then: tuple[str, ...] = ()  # a second pass over the file (e.g. rotation metadata)
    needs: str = ""  # "imageio": decoded only by the imageio-ffmpeg build (ffmpeg 8+)
    subtitles: bool = False
    traits: tuple[str, ...] = field(default_factory=tuple)

    def make(self, folder: Path) -> Path:
        out = folder / f"{self.name}.{self.ext}"
        if out.exists():
            return out
        first = out.with_name(f"{self.name}-pass1.{self.ext}") if self.then else out
        subprocess.run([ffmpeg_path(), *QUIET, *self.inputs, *self.output, str(first)],
                       check=True, capture_output=True)
        if self.then:
            subprocess.run([ffmpeg_path(), *QUIET, "-i", str(first), *self.then, str(out)],
                           check=True, capture_output=True)
        return out


VIDEO_FAMILIES = [
    Family("broadcast-ts", "ts",
           (*_video(), *_audio(48000, "5.1(side)")),
           ("-vf", "setfield=tff,tinterlace=interleave_top,fps=25", "-c:v", "mpeg2video",
            "-flags", "+ildct+ilme", "-c:a", "ac3", "-shortest"),
           channels=6, traits=("interlaced", "5.1(side) AC-3")),
    Family("bluray-m2ts", "m2ts", (*_video(), *_audio(48000, "stereo")),
           ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "ac3", "-mpegts_m2ts_mode", "1",
            "-shortest"), channels=2),
    Family("xdcam-mxf", "mxf", (*_video(), *_audio()),
           ("-c:v", "mpeg2video", "-pix_fmt", "yuv422p", "-b:v", "5M", "-c:a", "pcm_s24le",
            "-shortest"), traits=("MPEG-2 4:2:2",)),
    Family("dnxhd-mxf", "mxf", (*_video("256x144"), *_audio()),  # DNxHR: 256x120 or more
           ("-c:v", "dnxhd", "-profile:v", "dnxhr_lb", "-pix_fmt", "yuv422p",
            "-c:a", "pcm_s16le", "-shortest"), size=(256, 144)),
    Family("prores-mov", "mov", (*_video(), *_audio(96000)),
           ("-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
            "-c:a", "pcm_s24le", "-timecode", "01:00:00:00", "-shortest"),
           sample_rate=96000, traits=("10-bit 4:2:2", "96 kHz", "timecode track")),
    Family("dnxhd-mov", "mov", (*_video("256x144"), *_audio()),
           ("-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p", "-c:a", "aac",
            "-shortest"), size=(256, 144)),
    Family("ffv1-mkv", "mkv", (*_video(), *_audio(44100, "7.1")),
           ("-c:v", "ffv1", "-pix_fmt", "yuv444p10le", "-c:a", "flac", "-shortest"),
           channels=8, sample_rate=44100, traits=("10-bit 4:4:4", "7.1 FLAC")),
    Family("av1-webm", "webm", (*_video(), *_audio()),
           ("-c:v", "libsvtav1", "-preset", "12", "-pix_fmt", "yuv420p", "-c:a", "libopus",
            "-shortest")),
    Family("hevc-mp4", "mp4", (*_video(), *_audio()),
           ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
            "-pix_fmt", "yuv420p10le", "-c:a", "aac", "-shortest"), traits=("10-bit HEVC",)),
    Family("mjpeg-avi", "avi", (*_video(), *_audio(22050)),
           ("-c:v", "mjpeg", "-pix_fmt", "yuvj422p", "-c:a", "pcm_s16le", "-shortest"),
           sample_rate=22050),
    Family("flash-flv", "flv", (*_video(), *_audio(44100)),
           ("-c:v", "flv1", "-c:a", "libmp3lame", "-shortest"), sample_rate=44100),
    Family("phone-3gp", "3gp", (*_video("128x96", 15), *_audio(8000)),
           ("-c:v", "h263", "-c:a", "aac", "-shortest"), sample_rate=8000, size=(128, 96)),
    Family("theora-ogg", "ogg", (*_video(), *_audio()),
           ("-c:v", "libtheora", "-c:a", "libvorbis", "-shortest")),
    Family("animated-gif", "gif", tuple(_video("161x121", 10)), (), audio=False,
           size=(160, 120), traits=("odd size", "palette")),
    Family("animated-webp", "webp", tuple(_video("160x120", 10)),
           ("-vf", "format=yuva420p,geq=lum='lum(X,Y)':cb='cb(X,Y)':cr='cr(X,Y)'"
                   ":a='if(lt(X,80),255,0)'", "-c:v", "libwebp_anim", "-loop", "0"),
           audio=False, size=(160, 120), needs="imageio", traits=("alpha",)),
    # A portrait phone video: rotation metadata, variable frame rate (frames dropped), audio
    # starting 0.3 s late and running 0.8 s past the last frame.
    Family("phone-mp4", "mp4",
           (*_video("160x120", 30), "-itsoffset", "0.3", *_audio(48000, "stereo", 1.5)),
           ("-vf", "select='not(mod(n,4))+lt(n,10)'", "-fps_mode", "vfr", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-c:a", "aac"),
           channels=2, size=(120, 160),
           then=("-c", "copy", "-metadata:s:v:0", "rotate=90"),
           traits=("rotation", "variable frame rate", "late audio", "audio outlasts video")),
    Family("subtitled-mkv", "mkv", (*_video(), *_audio()),
           ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"),
           subtitles=True, then=("-i", "SUBS", "-map", "0", "-map", "1", "-c", "copy",
                                 "-c:s", "srt")),
    # The video stops 0.8 s before the input's end: the audio runs on silent.
    Family("long-video-mp4", "mp4", (*_video("160x120", 25, 1.6), *_audio(48000, "mono", 0.8)),
           ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"),
           traits=("video outlasts audio",)),
]

AUDIO_FAMILIES = [
    Family("song-mp3", "mp3", (*_audio(44100), "-i", "COVER"),
           ("-map", "0", "-map", "1", "-c:a", "libmp3lame", "-c:v", "png",
            "-disposition:v", "attached_pic", "-id3v2_version", "3"), traits=("cover art",)),
    Family("song-m4a", "m4a", (*_audio(44100), "-i", "COVER"),
           ("-map", "0", "-map", "1", "-c:a", "aac", "-c:v", "png",
            "-disposition:v", "attached_pic"), traits=("cover art",)),
    Family("hires-flac", "flac", tuple(_audio(96000, "5.1")), ("-c:a", "flac",
                                                                "-sample_fmt", "s32")),
    Family("surround-wav", "wav", tuple(_audio(48000, "5.1(side)")), ("-c:a", "pcm_s24le",)),
    Family("vorbis-ogg", "ogg", tuple(_audio(22050)), ("-c:a", "libvorbis",)),
    Family("opus-ogg", "ogg", tuple(_audio(48000, "stereo")), ("-c:a", "libopus",)),
    Family("adts-aac", "aac", tuple(_audio(44100)), ("-c:a", "aac",)),
]


def make(family: Family, folder: Path) -> Path:
    """The family's file in ``folder``, with its helper files (cover art, subtitles)."""
    cover = folder / "cover.png"
    if not cover.exists():
        subprocess.run([ffmpeg_path(), *QUIET, "-f", "lavfi", "-i",
                        "testsrc2=size=64x64:rate=1:duration=1", "-frames:v", "1", str(cover)],
                       check=True, capture_output=True)
    subs = folder / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:00,800\nHello, subtitles\n")
    swap = {"COVER": str(cover), "SUBS": str(subs)}
    resolved = Family(**{**family.__dict__,
                         "inputs": tuple(swap.get(a, a) for a in family.inputs),
                         "then": tuple(swap.get(a, a) for a in family.then)})
    return resolved.make(folder)
