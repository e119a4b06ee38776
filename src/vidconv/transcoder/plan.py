"""What one conversion runs and what it must leave: the ffmpeg command for the target and the
pictures its options add, and the checks of every file it wrote.

Every file goes into one scratch folder under the name it will have in storage (the main
output's, then vidconv.outputs' fixed names); the transcoder delivers the folder as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidconv import outputs
from vidconv.formats import Profile
from vidconv.transcoder import ffmpeg, pictures, streaming
from vidconv.transcoder.adapt import output_size
from vidconv.transcoder.errors import BadInput, Retryable
from vidconv.transcoder.probe import MediaInfo, probe, sniff
from vidconv.transcoder.tools import Tools


@dataclass(frozen=True)
class Plan:
    command: list[str]
    expected: float | None  # seconds of output, for progress and the truncation check
    folder: Path  # every file to deliver, the main one included
    main: Path
    keep_audio: bool = False
    sprites: pictures.Sprites | None = None


def make(tools: Tools, info: MediaInfo, source: Path, folder: Path, main_name: str,
         profile: Profile, options: Mapping[str, Any], max_duration: float) -> Plan:
    main = folder / main_name
    expected = ffmpeg.expected_duration(info, options)
    limit = ffmpeg.output_limit(options, max_duration)
    if profile.picture:
        assert info.video is not None  # checked before: a picture needs a video
        decoding, out, expected = pictures.target_args(profile, info.video, options, expected)
        command = [*ffmpeg.head(tools.ffmpeg, info, source, options, decoding),
                   "-map", f"0:{info.video.index}", "-t", f"{limit:.3f}", *pictures.OUTPUT_ARGS,
                   *out, *profile.muxer_args, "-f", profile.muxer, "-y", f"file:{main}"]
        return Plan(command, expected, folder, main)
    keep_audio = bool(info.audio is not None and options.get("audio", True)
                      and profile.audio is not None)
    top = int(options.get("max_height") or 0)
    if profile.package:
        main = folder / streaming.MASTER
        command = streaming.command(tools, info, source, folder, profile, options, max_duration,
                                    keep_audio)
        top = streaming.rungs_for(info, options)[0].height
    else:
        command = ffmpeg.build_command(tools.ffmpeg, info, source, main, profile, options,
                                       max_duration)
    sprites = None
    if info.video is not None and profile.video is not None:
        size = output_size(info.video, top, profile.video)
        extra, sprites = pictures.extra_outputs(info.video, options, folder, size, expected,
                                                limit)
        command += extra
    return Plan(command, expected, folder, main, keep_audio, sprites)


def finish(plan: Plan, tools: Tools, info: MediaInfo, profile: Profile,
           options: Mapping[str, Any], out_time: float) -> dict[str, Any]:
    """Check what ffmpeg wrote, write what is ours to write (the sprites' index); the main
    output's facts for the result."""
    if not plan.main.is_file() or plan.main.stat().st_size == 0:
        raise BadInput("conversion_failed", "ffmpeg produced no output from this input.")
    if profile.picture:
        facts = _verify_picture(plan, tools, profile, options)
    elif profile.package:
        facts = streaming.verify(tools, plan.folder, info, options, plan.expected,
                                 plan.keep_audio)
    else:
        facts = _verify(plan, tools, profile, out_time)
    if plan.sprites is not None:
        (plan.folder / outputs.SPRITES_INDEX).write_text(
            plan.sprites.index(facts["duration"] or plan.expected or 0.0))
    for name in outputs.extra_names(options):
        if not pictures.looks_like(plan.folder / name):
            raise Retryable("output_missing", f"ffmpeg wrote no {name}.")
    return facts


def _verify(plan: Plan, tools: Tools, profile: Profile, out_time: float) -> dict[str, Any]:
    """Probe what ffmpeg wrote; an output much shorter than promised means a damaged input.

    This probe costs ~50 ms, but ffmpeg's final out_time is the last *muxed* timestamp, which
    with B-frames falls a few frames short of the real length; the result must be exact.
    """
    demuxer = sniff(plan.main)
    if demuxer is None:
        raise Retryable("output_unreadable", "The converted file is not readable.")
    info = probe(tools, plan.main, demuxer)
    duration = info.duration if info.duration is not None else out_time
    expected = plan.expected
    if expected and duration < expected - max(1.0, expected * 0.1):
        raise BadInput("truncated_input",
                       f"Only {duration:.1f} s of the expected {expected:.1f} s could be "
                       "decoded; the input is truncated or damaged.")
    video = info.video.codec if info.video else None
    audio = info.audio.codec if info.audio else None
    wanted = (profile.video.name if profile.video else None,
              profile.audio.name if plan.keep_audio and profile.audio else None)
    if (video, audio) != wanted:
        raise Retryable("output_mismatch", f"ffmpeg wrote {video}/{audio}, not {wanted[0]}/"
                                           f"{wanted[1]}; this ffmpeg build lacks an encoder.")
    return {"duration": round(duration, 3), "video_codec": video, "audio_codec": audio}


def _verify_picture(plan: Plan, tools: Tools, profile: Profile,
                    options: Mapping[str, Any]) -> dict[str, Any]:
    """A picture is what its name says; an animation as long as asked (GIF can be probed;
    animated WebP only by ffmpeg 8, so its length is ffmpeg's word)."""
    if not pictures.looks_like(plan.main):
        raise Retryable("output_unreadable", "The picture ffmpeg wrote is not readable.")
    codec = profile.video
    duration = None
    if pictures.moves(profile, options):
        codec = profile.moving
        duration = plan.expected
        if profile.muxer == "gif":
            duration = probe(tools, plan.main, "gif").duration or duration
    assert codec is not None
    return {"duration": None if duration is None else round(duration, 3),
            "video_codec": codec.name, "audio_codec": None}
