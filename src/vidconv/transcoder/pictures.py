"""Pictures: a poster or an animation as the target, and the thumbnail, preview and sprites that
options add beside a video (as more outputs of the same ffmpeg run: the input is decoded once).

- A poster is the frame at ``start`` when given, else a representative one: frames sampled
  evenly across the whole input and ffmpeg's ``thumbnail`` filter, which keeps the one whose
  colours are nearest the average of the samples, so a black or faded first frame never wins.
  As a target of its own, from an input longer than a minute, only keyframes are decoded
  (``-skip_frame nokey``): a poster of a two-hour film costs seconds, not a full decode (a
  shorter input may have a single keyframe, its first frame, and is cheap to decode whole).
- An animation (gif, webp with a duration) is ``duration`` seconds from ``start``, at 12 fps,
  at most 320 pixels high unless ``max_height`` says otherwise, and never longer than 30 s (a
  GIF palette needs every frame in memory).
- A video's preview is four one-second moments spread over it (or its first four seconds); its
  sprites a sheet of 160-pixel-wide frames, ten a row, at most a hundred, with a WebVTT index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidconv import outputs
from vidconv.formats import FORMATS, Codec, Profile
from vidconv.transcoder.adapt import choose_pix_fmt, output_size
from vidconv.transcoder.probe import VideoStream

POSTER_SAMPLES = 24
KEYFRAMES_ONLY_AFTER = 60.0  # seconds of input from which a poster is chosen among keyframes
ANIMATION_SECONDS, ANIMATION_MAX_SECONDS = 3.0, 30.0
ANIMATION_FPS, ANIMATION_HEIGHT = 12, 320
PREVIEW_CLIPS, PREVIEW_CLIP_SECONDS = 4, 1.0
SPRITE_WIDTH, SPRITE_COLUMNS, SPRITE_MAX, SPRITE_MIN_INTERVAL = 160, 10, 100, 2.0
# What the pictures beside a video are encoded as.
THUMBNAIL_QUALITY, SPRITE_QUALITY = 90, 75
PALETTE = "split[a][b];[a]palettegen[p];[b][p]paletteuse=dither=bayer:bayer_scale=3"
OUTPUT_ARGS = ["-an", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]


def _deinterlace(video: VideoStream) -> list[str]:
    return ["bwdif=mode=send_frame:deint=interlaced"] if video.interlaced else []


def poster_filters(duration: float | None, at: float | None) -> list[str]:
    """Pick the poster frame: the one at ``at``, else the most representative of samples taken
    evenly over ``duration`` seconds (or of the first few frames when it is unknown)."""
    if at is not None:
        return [f"trim=start={at:.3f}"]
    if duration:
        return [f"fps={POSTER_SAMPLES / duration:.6f}", f"thumbnail=n={POSTER_SAMPLES}"]
    return [f"thumbnail=n={POSTER_SAMPLES}"]


def animation_filters(codec: Codec, video: VideoStream, height: int) -> list[str]:
    width, height = output_size(video, height, codec)
    filters = [f"fps={ANIMATION_FPS}", f"scale={width}:{height}"]
    if codec.name == "gif":
        return [*filters, PALETTE]
    return [*filters, f"format={choose_pix_fmt(video.pix_fmt, codec.pix_fmts)}"]


def animation_length(options: Mapping[str, Any]) -> float:
    return min(float(options.get("duration") or ANIMATION_SECONDS), ANIMATION_MAX_SECONDS)


def moves(profile: Profile, options: Mapping[str, Any]) -> bool:
    """Whether a picture target is an animation: gif always, webp when given a duration."""
    return profile.kind == "animation" and (profile.moving is profile.video
                                            or "duration" in options)


def target_args(profile: Profile, video: VideoStream, options: Mapping[str, Any],
                duration: float | None) -> tuple[list[str], list[str], float | None]:
    """(input arguments, output arguments, seconds of output) of a picture target.

    ``duration``: how long the input is past ``start`` (None: unknown).
    """
    max_height = int(options.get("max_height") or 0)
    quality = options.get("quality")
    if moves(profile, options):
        assert profile.moving is not None
        codec, length = profile.moving, animation_length(options)
        if duration is not None:
            length = min(length, duration)
        filters = animation_filters(codec, video, max_height or ANIMATION_HEIGHT)
        out = ["-t", f"{length:.3f}", "-filter:v", ",".join([*_deinterlace(video), *filters]),
               "-c:v", codec.encoder, *codec.args, *codec.quality_args(quality)]
        return [], out, length
    assert profile.video is not None
    codec = profile.video
    at_start = "start" in options  # the first frame there; else the most representative
    width, height = output_size(video, max_height, codec)
    filters = [*_deinterlace(video), *([] if at_start else poster_filters(duration, None)),
               f"scale={width}:{height}",
               f"format={choose_pix_fmt(video.pix_fmt, codec.pix_fmts)}"]
    # Without a time, a long input's keyframes are enough to choose from, and much cheaper.
    sparse = not at_start and duration is not None and duration > KEYFRAMES_ONLY_AFTER
    inputs = ["-skip_frame", "nokey"] if sparse else []
    out = ["-filter:v", ",".join(filters), "-frames:v", "1",
           "-c:v", codec.encoder, *codec.args, *codec.quality_args(quality)]
    return inputs, out, duration


@dataclass(frozen=True)
class Sprites:
    interval: float
    count: int
    width: int
    height: int

    @property
    def rows(self) -> int:
        return math.ceil(self.count / SPRITE_COLUMNS)

    def index(self, duration: float) -> str:
        """The WebVTT index: each stretch of the video and its frame's place on the sheet."""
        cues = ["WEBVTT", ""]
        for k in range(self.count):
            begin, end = k * self.interval, min((k + 1) * self.interval, duration)
            if begin >= duration:
                break
            x, y = (k % SPRITE_COLUMNS) * self.width, (k // SPRITE_COLUMNS) * self.height
            cues += [f"{_clock(begin)} --> {_clock(end)}",
                     f"{outputs.SPRITES}#xywh={x},{y},{self.width},{self.height}", ""]
        return "\n".join(cues)


def sprites_for(video: VideoStream, duration: float) -> Sprites:
    interval = max(SPRITE_MIN_INTERVAL, duration / SPRITE_MAX)
    width, height = video.display_size
    tile_height = max(2, round(SPRITE_WIDTH * height / width / 2) * 2)
    return Sprites(interval, max(1, min(SPRITE_MAX, math.ceil(duration / interval))),
                   SPRITE_WIDTH, tile_height)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return (f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}."
            f"{round((seconds - whole) * 1000):03d}")


def _preview_select(duration: float) -> str:
    """The moments of a preview, each half-open (a frame on a boundary counts once)."""
    if duration < PREVIEW_CLIPS * 2 * PREVIEW_CLIP_SECONDS:
        return f"lt(t,{min(duration, PREVIEW_CLIPS * PREVIEW_CLIP_SECONDS):.3f})"
    spans = []
    for k in range(PREVIEW_CLIPS):
        begin = duration * (k + 0.5) / PREVIEW_CLIPS - PREVIEW_CLIP_SECONDS / 2
        spans.append(f"gte(t,{begin:.3f})*lt(t,{begin + PREVIEW_CLIP_SECONDS:.3f})")
    return "+".join(spans)


def extra_outputs(video: VideoStream, options: Mapping[str, Any], folder: Path,
                  size: tuple[int, int], duration: float | None, limit: float
                  ) -> tuple[list[str], Sprites | None]:
    """ffmpeg output arguments for the pictures a video task's options ask for, written into
    ``folder`` under their fixed names (vidconv.outputs); ``size`` is the main video's.
    Returns them and the sprites' layout (its index is written once ffmpeg is done)."""
    args: list[str] = []
    base = ["-map", f"0:{video.index}", "-t", f"{limit:.3f}", *OUTPUT_ARGS]
    if poster := outputs.thumbnail_format(options):
        codec = FORMATS[poster].video
        assert codec is not None
        at = options.get("thumbnail_at")
        filters = [*_deinterlace(video), *poster_filters(duration, at),
                   f"scale={size[0]}:{size[1]}",
                   f"format={choose_pix_fmt(video.pix_fmt, codec.pix_fmts)}"]
        args += [*base, "-filter:v", ",".join(filters), "-frames:v", "1", "-c:v", codec.encoder,
                 *codec.quality_args(THUMBNAIL_QUALITY), *_muxer(poster),
                 f"file:{folder / f'{outputs.THUMBNAIL}.{poster}'}"]
    if preview := options.get("preview"):
        codec = FORMATS[str(preview)].moving
        assert codec is not None
        select = _preview_select(duration or PREVIEW_CLIPS * PREVIEW_CLIP_SECONDS)
        scaled = animation_filters(codec, video, min(ANIMATION_HEIGHT, size[1]))
        filters = [*_deinterlace(video), scaled[0], f"select='{select}'",
                   f"setpts=N/{ANIMATION_FPS}/TB", *scaled[1:]]
        args += [*base, "-filter:v", ",".join(filters), "-c:v", codec.encoder, *codec.args,
                 *codec.quality_args(None), *_muxer(str(preview)),
                 f"file:{folder / f'{outputs.PREVIEW}.{preview}'}"]
    sprites = None
    if options.get("sprites") and duration:
        sprites = sprites_for(video, duration)
        codec = FORMATS["jpg"].video
        assert codec is not None
        filters = [*_deinterlace(video), f"fps=1/{sprites.interval:.6f}",
                   f"scale={sprites.width}:{sprites.height}",
                   f"tile={SPRITE_COLUMNS}x{sprites.rows}", "format=yuvj420p"]
        args += [*base, "-filter:v", ",".join(filters), "-frames:v", "1", "-c:v", codec.encoder,
                 *codec.quality_args(SPRITE_QUALITY), *_muxer("jpg"),
                 f"file:{folder / outputs.SPRITES}"]
    return args, sprites


def _muxer(fmt: str) -> list[str]:
    profile = FORMATS[fmt]
    return [*profile.muxer_args, "-f", profile.muxer, "-y"]


MAGIC = {"jpg": (b"\xff\xd8\xff",), "png": (b"\x89PNG",), "gif": (b"GIF87a", b"GIF89a"),
         "webp": (b"RIFF",), "vtt": (b"WEBVTT",)}


def looks_like(path: Path) -> bool:
    """A picture of ours is what its name says (its first bytes), and not empty."""
    ext = path.suffix.lstrip(".")
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return any(head.startswith(m) for m in MAGIC.get(ext, (b"",))) and len(head) > 0 \
        and (ext != "webp" or head[8:12] == b"WEBP")
