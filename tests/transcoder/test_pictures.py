"""Pictures: posters and animations as targets, and the thumbnail, preview and sprites a video
task's options add beside its output, looked at the way a player or a page would."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ffmpeg_path
from tests.media import ffprobe, streams
from tests.transcoder.helpers import transcode


@pytest.fixture(scope="module")
def fade_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 320x240: one second of black, then colour bars in motion; a tone throughout."""
    out = tmp_path_factory.mktemp("pictures") / "fade-in.mp4"
    subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error",
                    "-f", "lavfi", "-i", "color=black:size=320x240:rate=30:duration=1",
                    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
                    "-filter_complex", "[0:v][1:v]concat=n=2:v=1,format=yuv420p[v]",
                    "-map", "[v]", "-map", "2:a", "-c:v", "libx264", "-c:a", "aac", str(out)],
                   check=True)
    return out


def brightness(path: Path) -> float:
    """The mean luma (0..255) of a picture's first frame."""
    out = subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-frames:v", "1",
         "-vf", "format=gray,signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
         "-f", "null", "-"], capture_output=True, text=True, check=True).stdout
    return float(out.split("YAVG=")[1].split()[0])


def picture(path: Path) -> dict[str, object]:
    [video] = streams(ffprobe(path), "video")
    return video


@pytest.mark.parametrize(("fmt", "codec"), [("jpg", "mjpeg"), ("png", "png"), ("webp", "webp")])
def test_a_poster_is_a_representative_frame_not_the_black_first_one(
        fmt: str, codec: str, fade_in: Path, tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / f"poster.{fmt}"
    run = transcode(fade_in, out, fmt, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    shown = picture(out)
    assert (shown["codec_name"], shown["width"], shown["height"]) == (codec, 320, 240)
    assert brightness(out) > 60  # the bars; black is 16
    assert run.result["video_codec"] == codec and run.result["audio_codec"] is None
    assert run.result["size"] == out.stat().st_size


def test_a_poster_at_a_time_is_that_frame_at_the_asked_height(
        fade_in: Path, tmp_path: Path, env: dict[str, str]) -> None:
    dark, bright = tmp_path / "dark.jpg", tmp_path / "bright.jpg"
    assert transcode(fade_in, dark, "jpg", "start=0.5", env=env).returncode == 0
    run = transcode(fade_in, bright, "jpg", "start=2", "max_height=120", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert brightness(dark) < 30 < 60 < brightness(bright)
    assert (picture(bright)["width"], picture(bright)["height"]) == (160, 120)


@pytest.mark.parametrize(("fmt", "options", "seconds", "height"), [
    ("gif", (), 3.0, 240),  # the default length, from the start
    ("gif", ("start=1", "duration=2", "max_height=120"), 2.0, 120),
    ("webp", ("start=1", "duration=1.5"), 1.5, 240),
])
def test_an_animation_moves_for_the_asked_range(
        fmt: str, options: tuple[str, ...], seconds: float, height: int, fade_in: Path,
        tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / f"moving.{fmt}"
    run = transcode(fade_in, out, fmt, *options, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.result["duration"] == pytest.approx(seconds, abs=0.15)
    if fmt == "gif":
        info = ffprobe(out)
        assert float(info["format"]["duration"]) == pytest.approx(seconds, abs=0.15)
        assert picture(out)["height"] == height
        assert int(picture(out)["nb_frames"]) == pytest.approx(seconds * 12, abs=2)  # 12 fps
    else:  # Debian's ffmpeg 5.1 cannot decode animated WebP: read its chunks
        data = out.read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP" and b"ANIM" in data[:64]
        assert data.count(b"ANMF") == pytest.approx(seconds * 12, abs=2)


def test_a_video_task_gets_its_thumbnail_preview_and_sprites_beside_it(
        fade_in: Path, tmp_path: Path, env: dict[str, str]) -> None:
    tmp_path = tmp_path / "out"  # beside the scratch folder
    out = tmp_path / "clip.mp4"
    run = transcode(fade_in, out, "mp4", "thumbnail=webp", "preview=gif", "sprites=true",
                    env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["clip.mp4", "preview.gif", "sprites.jpg", "sprites.vtt", "thumbnail.webp"]
    assert run.result["size"] == sum((tmp_path / n).stat().st_size for n in names)
    assert run.result["video_codec"] == "h264" and run.result["duration"] == pytest.approx(4, 0.1)

    thumbnail = picture(tmp_path / "thumbnail.webp")
    assert (thumbnail["codec_name"], thumbnail["width"], thumbnail["height"]) == ("webp", 320,
                                                                                  240)
    assert brightness(tmp_path / "thumbnail.webp") > 60
    preview = ffprobe(tmp_path / "preview.gif")
    assert float(preview["format"]["duration"]) == pytest.approx(4.0, abs=0.2)  # a short clip

    sheet = picture(tmp_path / "sprites.jpg")
    # 4 s, a frame every 2 s: two 160x120 frames on a row of ten.
    assert (sheet["width"], sheet["height"]) == (1600, 120)
    assert (tmp_path / "sprites.vtt").read_text().splitlines() == [
        "WEBVTT", "",
        "00:00:00.000 --> 00:00:02.000", "sprites.jpg#xywh=0,0,160,120", "",
        "00:00:02.000 --> 00:00:04.000", "sprites.jpg#xywh=160,0,160,120"]


def test_a_thumbnail_at_a_time_and_a_webp_preview_of_a_longer_video(
        make_clip: object, tmp_path: Path, env: dict[str, str]) -> None:
    clip = make_clip(seconds=10.0, width=160, height=120)  # type: ignore[operator]
    tmp_path = tmp_path / "out"  # beside the scratch folder
    out = tmp_path / "clip.webm"
    run = transcode(clip, out, "webm", "thumbnail_at=3", "preview=webp", env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.webm", "preview.webp",
                                                          "thumbnail.jpg"]
    assert picture(tmp_path / "thumbnail.jpg")["codec_name"] == "mjpeg"  # the default poster
    # Four one-second moments spread over the ten: 48 frames at 12 fps.
    data = (tmp_path / "preview.webp").read_bytes()
    assert data.count(b"ANMF") == pytest.approx(48, abs=2)


def test_a_thumbnail_after_the_end_or_a_picture_of_sound_is_refused(
        fade_in: Path, tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "clip.mp4"
    run = transcode(fade_in, out, "mp4", "thumbnail_at=9", env=env)
    assert run.returncode == 2 and run.result["code"] == "invalid_option"
    assert "thumbnail_at=9 is at or after the output's end" in run.result["error"]
    sound = tmp_path / "sound.m4a"
    assert transcode(fade_in, sound, "m4a", env=env).returncode == 0
    run = transcode(sound, tmp_path / "poster.jpg", "jpg", env=env)
    assert run.returncode == 2 and run.result["code"] == "no_video"
    assert "cannot become a jpg picture" in run.result["error"]
    assert not (tmp_path / "poster.jpg").exists() and not out.exists()
