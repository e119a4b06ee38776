"""The decisions that fit an input to a profile's encoders, table-driven (pure functions)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from vidconv.formats import FORMATS, MPEG2_RATES
from vidconv.transcoder.adapt import (
    choose_layout,
    choose_pix_fmt,
    choose_rate,
    choose_sample_fmt,
    choose_sample_rate,
    output_size,
    stream_args,
)
from vidconv.transcoder.probe import AudioStream, MediaInfo, SubtitleStream, VideoStream

AAC, OPUS, MP3, WMA = (FORMATS[f].audio for f in ("mp4", "webm", "mp3", "wmv"))


@pytest.mark.parametrize(("channels", "layout", "codec", "chosen"), [
    (6, "5.1(side)", AAC, "5.1"),  # the same speakers under AAC's name
    (6, "5.1(side)", OPUS, "5.1"),  # Opus mapping family 1 takes the Vorbis order
    (6, "5.1", MP3, "stereo"),  # downmixed
    (6, "5.1(side)", WMA, "stereo"),
    (8, "7.1", AAC, "7.1"),
    (8, "7.1(wide)", OPUS, "7.1"),
    (6, "", OPUS, "5.1"),  # an unnamed 6-channel layout is taken as 5.1
    (1, "mono", WMA, "mono"),
    (2, "", MP3, "stereo"),
    (2, "downmix", AAC, "stereo"),
    (3, "2.1", OPUS, "stereo"),  # no 3-channel layout of Opus has an LFE
    (6, "hexagonal", AAC, "stereo"),  # no AAC configuration has those speakers
])
def test_channel_layouts_are_kept_matched_or_downmixed(
        channels: int, layout: str, codec: object, chosen: str) -> None:
    assert choose_layout(AudioStream(1, "pcm_s16le", channels, layout, 48000),
                         codec.layouts) == chosen  # type: ignore[attr-defined]


@pytest.mark.parametrize(("asked", "fmt", "chosen"), [
    (7, "m4a", "5.1"), (7, "opus", "6.1"), (6, "mp3", "stereo"), (1, "wmv", "mono"),
    (3, "flac", "3.0"), (4, "m4a", "4.0"), (4, "wav", "quad"),
])
def test_asked_channels_get_the_codecs_layout_of_that_many_or_the_nearest(
        asked: int, fmt: str, chosen: str) -> None:
    stereo = AudioStream(1, "pcm_s16le", 2, "stereo", 48000)
    assert choose_layout(stereo, FORMATS[fmt].audio.layouts, asked) == chosen


@pytest.mark.parametrize(("source", "fmt", "chosen"), [
    ("s16", "flac", "s16"), ("s16p", "flac", "s16"), ("s32", "flac", "s16|s32"),
    ("fltp", "flac", "s16|s32"), ("", "flac", "s16|s32"),
    ("s16", "mp3", "fltp|s32p|s16p"), ("s16", "opus", "flt|s16"),  # floats: no extra rounding
])
def test_a_lossless_target_keeps_a_16_bit_source_at_16_bits(
        source: str, fmt: str, chosen: str) -> None:
    assert choose_sample_fmt(source, FORMATS[fmt].audio.sample_fmts) == chosen


@pytest.mark.parametrize(("rate", "fmt", "chosen"), [
    (96000, "wmv", 48000), (96000, "mp4", 96000), (96000, "webm", 48000),
    (44100, "webm", 48000), (22050, "webm", 24000), (11025, "webm", 12000),
    (8000, "mp3", 32000), (22050, "mpeg", 32000), (44100, "mpeg", 44100),
    (192000, "mp4", 96000), (0, "wmv", 48000),
])
def test_sample_rates_go_to_the_nearest_one_the_encoder_takes(
        rate: int, fmt: str, chosen: int) -> None:
    assert choose_sample_rate(rate, FORMATS[fmt].audio.sample_rates) == chosen


@pytest.mark.parametrize(("source", "fmt", "chosen"), [
    ("yuv420p10le", "mp4", "yuv420p"), ("yuv422p10le", "mp4", "yuv420p"),
    ("yuv444p", "mkv", "yuv420p"), ("yuva420p", "mp4", "yuv420p"),
    ("yuva420p", "webm", "yuva420p"), ("argb", "webm", "yuva420p"), ("bgra", "webm", "yuva420p"),
    ("pal8", "webm", "yuv420p"), ("gray", "avi", "yuv420p"), ("yuvj422p", "mpeg", "yuv420p"),
])
def test_pixel_formats_become_what_the_target_takes(source: str, fmt: str, chosen: str) -> None:
    video = FORMATS[fmt].video
    assert video is not None and choose_pix_fmt(source, video.pix_fmts) == chosen


@pytest.mark.parametrize(("rate", "allowed", "chosen"), [
    (29.97003, (), Fraction(30000, 1001)), (25.0, (), Fraction(25)), (19.565, (),
                                                                      Fraction(19565, 1000)),
    (None, (), Fraction(30)), (15.0, MPEG2_RATES, Fraction(24000, 1001)),
    (120.0, MPEG2_RATES, Fraction(60)), (30.0, MPEG2_RATES, Fraction(30)),
])
def test_constant_frame_rates_are_chosen_from_the_average(
        rate: float | None, allowed: tuple[Fraction, ...], chosen: Fraction) -> None:
    assert choose_rate(rate, allowed) == chosen


@pytest.mark.parametrize(("size", "rotation", "max_height", "fmt", "chosen"), [
    ((321, 241), 0, 0, "mp4", (320, 240)),  # odd sides: one pixel off, no rescale
    ((1920, 1080), 90, 0, "mp4", (1080, 1920)),  # portrait phone video, upright
    ((1920, 1080), 0, 480, "mp4", (854, 480)),
    ((640, 480), 0, 720, "mp4", (640, 480)),  # never upscaled
    ((3840, 2160), 0, 0, "mpeg", (1920, 1080)),  # MPEG-2 High level
    ((4096, 2160), 0, 0, "mpeg", (1920, 1012)),
    ((1080, 1920), 0, 0, "mpeg", (648, 1152)),
    ((48, 36), 0, 0, "av1", (86, 64)),  # SVT-AV1 takes nothing under 64x64
    ((1280, 720), 0, 16, "av1", (114, 64)),
])
def test_output_sizes_are_even_upright_and_within_the_limits(
        size: tuple[int, int], rotation: int, max_height: int, fmt: str,
        chosen: tuple[int, int]) -> None:
    video = VideoStream(0, "h264", *size, rotation=rotation)
    codec = FORMATS[fmt].video
    assert codec is not None and output_size(video, max_height, codec) == chosen


def _info(video_end: float, audio_end: float, subs: tuple[str, ...] = ()) -> MediaInfo:
    return MediaInfo("mov", "mov", max(video_end, audio_end),
                     VideoStream(0, "h264", 320, 240, "yuv420p", duration=video_end, start=0.0),
                     AudioStream(1, "aac", 6, "5.1", 48000, start=0.0, duration=audio_end),
                     tuple(SubtitleStream(2 + i, c) for i, c in enumerate(subs)))


def test_the_shorter_stream_is_padded_to_the_end() -> None:
    held = stream_args(FORMATS["mp4"], _info(1.0, 3.0), {}, keep_audio=True)
    assert "tpad=stop=-1:stop_mode=clone,trim=end=3.000" in held[held.index("-filter:v") + 1]
    silent = stream_args(FORMATS["avi"], _info(3.0, 1.0), {}, keep_audio=True)
    assert "apad=whole_dur=3.000" in silent[silent.index("-filter:a") + 1]
    trimmed = stream_args(FORMATS["mp4"], _info(1.0, 3.0), {"duration": 0.5}, keep_audio=True)
    assert "tpad" not in " ".join(trimmed)  # within the first 0.5 s both streams run
    alike = stream_args(FORMATS["mp4"], _info(1.0, 1.1), {}, keep_audio=True)
    assert "tpad" not in " ".join(alike) and "apad" not in " ".join(alike)


def test_surround_opus_gets_its_mapping_family_and_subtitles_their_container_codec() -> None:
    args = stream_args(FORMATS["webm"], _info(1.0, 1.0, ("subrip", "hdmv_pgs_subtitle")),
                       {}, keep_audio=True)
    assert args[args.index("-mapping_family") + 1] == "1"
    assert args[args.index("-c:s:0") + 1] == "webvtt" and "-c:s:1" not in args  # bitmap: no
    assert ["-map", "0:2"] == args[args.index("0:2") - 1:args.index("0:2") + 1]
    mkv = stream_args(FORMATS["mkv"], _info(1.0, 1.0, ("ass",)), {}, keep_audio=True)
    assert mkv[mkv.index("-c:s:0") + 1] == "ass"  # kept with its styling
    avi = stream_args(FORMATS["avi"], _info(1.0, 1.0, ("subrip",)), {}, keep_audio=True)
    assert "-sn" in avi and "-c:s:0" not in avi
