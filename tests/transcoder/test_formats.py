"""The profiles' public API: names, strict option validation, the ffmpeg arguments options give."""

from __future__ import annotations

from typing import Any

import pytest

from vidconv.formats import (
    FORMATS,
    FormatError,
    InvalidOption,
    UnsupportedFormat,
    encode_args,
    format_names,
)
from vidconv.options import OPTIONS, options_for, validate_options


def test_every_promised_format_exists_with_its_file_type() -> None:
    assert {"mp4", "webm", "avi", "mpeg", "wmv", "mkv", "mov", "mp3"} <= set(format_names())
    assert FORMATS["mp3"].audio_only and not FORMATS["mp4"].audio_only
    assert FORMATS["mp4"].mime_type == "video/mp4"
    assert FORMATS["wmv"].extension == "wmv"
    assert set(OPTIONS) == {"max_height", "video_bitrate", "quality", "audio", "start", "duration",
                            "preset", "audio_bitrate", "channels", "sample_rate", "thumbnail",
                            "thumbnail_at", "preview", "sprites"}


@pytest.mark.parametrize(("raw", "typed"), [
    ({"max_height": "480"}, {"max_height": 480}),
    ({"max_height": "16"}, {"max_height": 16}),
    ({"max_height": 4320}, {"max_height": 4320}),
    ({"video_bitrate": "2500"}, {"video_bitrate": 2500}),
    ({"quality": "0"}, {"quality": 0}),
    ({"quality": "100", "audio": "false"}, {"quality": 100, "audio": False}),
    ({"audio": True}, {"audio": True}),
    ({"start": "0", "duration": "1.5"}, {"start": 0.0, "duration": 1.5}),
    ({"preset": "fast"}, {"preset": "fast"}),
    ({"preset": " Quality "}, {"preset": "quality"}),
])
def test_valid_options_come_back_typed(raw: dict[str, Any], typed: dict[str, Any]) -> None:
    assert validate_options("mp4", raw) == typed


@pytest.mark.parametrize(("fmt", "raw", "words"), [
    ("mp4", {"max_height": "15"}, "at least 16"),
    ("mp4", {"max_height": "4321"}, "at most 4320"),
    ("mp4", {"max_height": "480.5"}, "whole number"),
    ("mp4", {"video_bitrate": "99"}, "at least 100"),
    ("mp4", {"video_bitrate": "50001"}, "at most 50000"),
    ("mp4", {"quality": "101"}, "at most 100"),
    ("mp4", {"quality": "-1"}, "at least 0"),
    ("mp4", {"audio": "maybe"}, "true or false"),
    ("mp4", {"start": "-1"}, "at least 0"),
    ("mp4", {"duration": "0"}, "greater than 0"),
    ("mp4", {"duration": "nan"}, "finite"),
    ("mp4", {"colour": "red"}, "Unknown option 'colour'"),
    ("mp4", {"quality": "50", "video_bitrate": "1000"}, "not both"),
    ("mp3", {"max_height": "480"}, "audio-only"),
    ("mp3", {"audio": "false"}, "audio only"),
    ("mp4", {"preset": "turbo"}, "must be one of fast, balanced, quality, not 'turbo'"),
    ("mp3", {"preset": "fast"}, "audio-only"),
    ("flac", {"audio_bitrate": "320"}, "does not apply to flac: its flac audio is lossless"),
    ("wav", {"audio_bitrate": "320"}, "does not apply to wav"),
    ("opus", {"audio_bitrate": "5"}, "at least 6"),
    ("m4a", {"audio_bitrate": "600"}, "at most 512"),
    ("m4a", {"channels": "0"}, "at least 1"),
    ("wav", {"channels": "9"}, "at most 8"),
    ("flac", {"sample_rate": "200000"}, "at most 192000"),
    ("m4a", {"max_height": "480"}, "audio-only"),
    ("jpg", {"duration": "2"}, "a jpg is one frame (the one at start); webp and gif move"),
    ("png", {"audio": "false"}, "does not apply to the picture format png"),
    ("gif", {"thumbnail": "jpg"}, "does not apply to the picture format gif"),
    ("mp3", {"sprites": "true"}, "does not apply to the audio-only format mp3"),
    ("mp4", {"thumbnail": "png"}, "must be one of jpg, webp"),
    ("mp4", {"preview": "jpg"}, "must be one of webp, gif"),
])
def test_invalid_options_are_refused_with_a_clear_sentence(
        fmt: str, raw: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        validate_options(fmt, raw)
    assert words in str(caught.value)
    assert isinstance(caught.value, FormatError) and isinstance(caught.value, ValueError)


def test_which_options_each_kind_of_format_takes() -> None:
    assert "audio_bitrate" not in options_for("flac") and "audio_bitrate" in options_for("wmv")
    assert "max_height" not in options_for("m4a") and "max_height" in options_for("mp4")
    assert {"channels", "sample_rate"} <= set(options_for("wav")) & set(options_for("mpeg"))
    typed = validate_options("m4a", {"audio_bitrate": "96", "channels": "1",
                                     "sample_rate": "22050"})
    assert typed == {"audio_bitrate": 96, "channels": 1, "sample_rate": 22050}


def test_an_asked_audio_bitrate_replaces_the_profiles_own() -> None:
    args = encode_args(FORMATS["m4a"], {"audio_bitrate": 96}, has_audio=True)
    assert args[args.index("-b:a") + 1] == "96k" and args.count("-b:a") == 1
    default = encode_args(FORMATS["m4a"], {}, has_audio=True)
    assert default[default.index("-b:a") + 1] == "160k"
    mp3 = encode_args(FORMATS["mp3"], {"audio_bitrate": 128}, has_audio=True)
    assert "-q:a" not in mp3 and mp3[mp3.index("-b:a") + 1] == "128k"  # CBR, not VBR
    # The nearest the codec takes: within its range, on its steps (MP2 has a table).
    for fmt, asked, given in (("mpeg", 100, "96k"), ("mpeg", 500, "384k"), ("avi", 6, "32k"),
                              ("webm", 600, "510k"), ("wmv", 100, "100k")):
        args = encode_args(FORMATS[fmt], {"audio_bitrate": asked}, has_audio=True)
        assert args[args.index("-b:a") + 1] == given, (fmt, asked)


def test_unknown_format_lists_the_choices() -> None:
    with pytest.raises(UnsupportedFormat, match="choose one of .*mp4"):
        validate_options("flv", {})


def test_quality_maps_onto_each_codec_scale() -> None:
    best = encode_args(FORMATS["mp4"], {"quality": 100}, has_audio=True)
    worst = encode_args(FORMATS["mp4"], {"quality": 0}, has_audio=True)
    assert best[best.index("-crf") + 1] == "16" and worst[worst.index("-crf") + 1] == "40"
    default = encode_args(FORMATS["mp4"], {}, has_audio=True)
    assert default[default.index("-crf") + 1] == "24"  # "faster" at 24: veryfast 23's VMAF
    avi = encode_args(FORMATS["avi"], {"quality": 100}, has_audio=True)
    assert avi[avi.index("-q:v") + 1] == "2"
    avi = encode_args(FORMATS["avi"], {}, has_audio=True)
    assert avi[avi.index("-q:v") + 1] == "5"  # 23 % fewer bits than 4 for VMAF 93


def test_bitrate_replaces_vp9_constant_quality() -> None:
    args = encode_args(FORMATS["webm"], {"video_bitrate": 800}, has_audio=False)
    assert args.count("-b:v") == 1 and args[args.index("-b:v") + 1] == "800k"
    assert "-crf" not in args and "-an" in args


def test_presets_are_speed_points_of_each_video_codec() -> None:
    for fmt, profile in FORMATS.items():
        if profile.video is None:
            continue
        points = [encode_args(profile, {"preset": p}, has_audio=False) for p in
                  ("fast", "balanced", "quality")]
        assert encode_args(profile, {}, has_audio=False) == points[1], fmt  # the default
        assert all(p[:2] == ["-c:v", profile.video.encoder] for p in points), fmt
    fast, quality = (encode_args(FORMATS["mp4"], {"preset": p}, has_audio=False)
                     for p in ("fast", "quality"))
    assert fast[fast.index("-preset") + 1] != quality[quality.index("-preset") + 1]
    explicit = encode_args(FORMATS["mp4"], {"preset": "fast", "quality": 100}, has_audio=False)
    assert explicit[explicit.index("-crf") + 1] == "16"  # quality still maps onto the CRF
