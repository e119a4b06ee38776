"""GET /api/formats: public, generated from vidconv.formats, and every default and range it
advertises is what a conversion does and what a task's options are checked against."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import MakeSettings, open_client
from vidconv import formats, options


@pytest.fixture
def listed(make_settings: MakeSettings) -> dict[str, Any]:
    with open_client(make_settings(max_upload_bytes=12345)) as client:
        r = client.get("/api/formats")  # no token: the page shows it before you log in
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=300"
        return r.json()  # type: ignore[no-any-return]


def test_every_format_is_listed_with_this_servers_upload_limit(listed: dict[str, Any]) -> None:
    assert [f["name"] for f in listed["formats"]] == list(formats.FORMATS)
    assert listed["max_upload_bytes"] == 12345
    mp3 = next(f for f in listed["formats"] if f["name"] == "mp3")
    assert mp3["audio_only"] and mp3["mime_type"] == "audio/mpeg"
    # Nothing that could not change an audio-only output is offered for it.
    assert [o["name"] for o in mp3["options"]] == [
        "quality", "start", "duration", "audio_bitrate", "channels", "sample_rate"]
    flac = next(f for f in listed["formats"] if f["name"] == "flac")
    assert "audio_bitrate" not in [o["name"] for o in flac["options"]]  # lossless
    webm = next(f for f in listed["formats"] if f["name"] == "webm")
    assert [o["name"] for o in webm["options"]] == list(options.OPTIONS)
    preset = next(o for o in webm["options"] if o["name"] == "preset")
    assert preset["choices"] == ["fast", "balanced", "quality"]
    assert preset["default"] == "balanced"


def test_each_default_is_what_a_conversion_does_without_the_option(
    listed: dict[str, Any],
) -> None:
    for fmt in listed["formats"]:
        profile = formats.get_profile(fmt["name"])
        plain = formats.encode_args(profile, {}, has_audio=True)
        for option in fmt["options"]:
            if option["default"] is None:
                continue
            given = {option["name"]: option["default"]}
            assert formats.encode_args(profile, given, has_audio=True) == plain, (fmt, option)
            for preset, quality in (option["default_by_preset"] or {}).items():
                assert formats.encode_args(profile, {"preset": preset}, has_audio=True) == (
                    formats.encode_args(profile, {"preset": preset, "quality": quality},
                                        has_audio=True)), (fmt["name"], preset)


def test_the_ranges_and_exclusions_are_what_a_task_is_checked_against(
    listed: dict[str, Any],
) -> None:
    for fmt in listed["formats"]:
        for option in fmt["options"]:
            name, low, high = option["name"], option["minimum"], option["maximum"]
            for value in (low, high):
                if value is not None and not (option["exclusive_minimum"] and value == low):
                    options.validate_options(fmt["name"], {name: value})
            if low is not None:
                below = low if option["exclusive_minimum"] else low - 1
                with pytest.raises(formats.InvalidOption):
                    options.validate_options(fmt["name"], {name: below})
            for other in option["excludes"]:
                ok = {o["name"]: o for o in fmt["options"]}[other]
                with pytest.raises(formats.InvalidOption):
                    options.validate_options(fmt["name"], {name: low or 1, other: ok["minimum"]})
