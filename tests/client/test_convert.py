"""`vidconv convert` end to end against a real server: piped, on a terminal, and with --json."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from tests import live
from tests.client.run import ANSI, Cli
from tests.media import ffprobe, streams
from tests.prom import scrape

Clip = Callable[..., Path]


def _input(cli: Cli, make_clip: Clip, name: str = "holiday.mov") -> Path:
    """A clip of the user's, in a folder of its own (the result lands beside it)."""
    clip = cli.cwd / "videos" / name
    clip.parent.mkdir(exist_ok=True)
    shutil.copy(make_clip(2.0, ext="mov"), clip)
    return clip


def test_a_whole_convert_piped_prints_plain_lines_and_saves_the_result_beside_the_input(
    cli: Cli, user: str, make_clip: Clip
) -> None:
    clip = _input(cli, make_clip)
    run = cli("convert", str(clip), "--to", "webm", "--max-height", "120")
    assert run.code == 0, run
    assert run.err == ""
    lines = run.out.splitlines()
    assert not ANSI.search(run.out) and "\r" not in run.out  # no bars into a pipe
    assert lines[0].startswith(f"holiday.mov ({clip.stat().st_size / 1000:.1f} kB) to webm on ")
    assert lines[1].startswith("upload: ") and "/s)" in lines[1]
    assert lines[2].startswith("task ")
    assert "convert: SUCCESS" in lines
    assert lines[-2].startswith("download: ")
    out = clip.with_name("holiday.webm")
    assert lines[-1].startswith(f"saved {out} (")
    info = ffprobe(out)
    assert info["format"]["format_name"] == "matroska,webm"
    [video] = streams(info, "video")
    assert (video["codec_name"], video["height"]) == ("vp9", 120)

    # Again: the first result is kept, the second takes a free name.
    again = cli("convert", str(clip), "--to", "webm", "--max-height", "120")
    assert again.code == 0, again
    assert again.out.splitlines()[-1].startswith(f"saved {clip.with_name('holiday-1.webm')} (")
    assert out.stat().st_size > 0


def test_on_a_terminal_the_upload_conversion_and_download_are_bars(
    cli: Cli, user: str, make_clip: Clip
) -> None:
    clip = _input(cli, make_clip)
    run = cli.on_terminal("convert", str(clip), "--to", "mp4", "-o", str(cli.cwd / "out.mp4"))
    assert run.code == 0, run.out
    assert "\x1b[" in run.out and "\r\x1b[2K" in run.out  # redrawn in place, in colour
    screen = run.screen
    bars = [line for line in screen.splitlines() if "━" in line]
    upload = [line for line in bars if line.startswith("upload")]
    convert = [line for line in bars if line.startswith("convert")]
    download = [line for line in bars if line.startswith("download")]
    assert upload and convert and download, screen
    size = f"{clip.stat().st_size / 1000:.1f}/{clip.stat().st_size / 1000:.1f} kB"
    assert size in upload[-1] and "/s" in upload[-1]  # bytes, rate (and time left)
    assert "100%" in convert[-1] and "SUCCESS" in convert[-1]
    assert "kB" in download[-1]
    assert f"saved {cli.cwd / 'out.mp4'} (" in screen
    assert ffprobe(cli.cwd / "out.mp4")["format"]["format_name"].startswith("mov,mp4")


def test_json_output_is_one_document_a_script_can_read(
    cli: Cli, user: str, make_clip: Clip
) -> None:
    clip = _input(cli, make_clip)
    run = cli("convert", str(clip), "--to", "mp3", "--json")
    assert run.code == 0, run
    result = json.loads(run.out)  # the whole of stdout
    out = Path(result["output"])
    assert out == clip.with_name("holiday.mp3").resolve()
    assert result["state"] == "SUCCESS" and result["size"] == out.stat().st_size
    assert result["task"]["conversion_type"] == "mp3"
    assert result["task"]["output_duration"] > 1.5

    listed = json.loads(cli("tasks", "--json").out)
    assert [t["task_id"] for t in listed] == [result["task_id"]]
    saved = json.loads(cli("download", result["task_id"], "-o", str(cli.cwd), "--json").out)
    assert Path(saved["output"]).read_bytes() == out.read_bytes()
    assert json.loads(cli("delete", result["task_id"], "--json").out) == {
        "deleted": result["task_id"]}
    assert json.loads(cli("tasks", "--json").out) == []


def test_tasks_download_and_delete_as_a_person_reads_them(
    cli: Cli, user: str, make_clip: Clip
) -> None:
    clip = _input(cli, make_clip)
    assert cli("tasks").out == "no tasks\n"
    done = json.loads(cli("convert", str(clip), "--to", "avi", "--json").out)
    task_id = done["task_id"]
    listed = cli("tasks")
    assert listed.code == 0 and listed.out.split() == [task_id, "avi", "SUCCESS"]
    on_terminal = cli.on_terminal("tasks").screen
    assert on_terminal.split()[:6] == ["TASK", "FORMAT", "STATE", task_id, "avi", "SUCCESS"]

    folder = cli.cwd / "downloads"
    folder.mkdir()
    run = cli("download", task_id, "-o", str(folder))
    assert run.code == 0, run
    assert run.out.splitlines()[-1].startswith(f"saved {folder / 'holiday.avi'} (")
    assert ffprobe(folder / "holiday.avi")["format"]["format_name"] == "avi"

    assert cli("delete", task_id).out == f"deleted {task_id}\n"
    gone = cli("download", task_id)
    assert gone.code == 4 and gone.err == "vidconv: task not found [HTTP 404]\n"


def test_the_conversion_is_followed_through_the_event_stream(
    cli: Cli, user: str, make_clip: Clip, server: live.LiveServer
) -> None:
    clip = cli.cwd / "long.mp4"
    # 40 s at VP9's slower preset: long enough to report on, even on an idle machine.
    shutil.copy(make_clip(40.0, width=640, height=360), clip)
    before = scrape(f"{server.url}/metrics")
    run = cli("convert", str(clip), "--to", "webm", "--preset", "quality")
    assert run.code == 0, run
    after = scrape(f"{server.url}/metrics")
    events = ("vidconv_http_requests_total", {"method": "GET", "status": "200",
                                             "route": "/api/tasks/{task_id}/events"})
    assert after.value(events[0], **events[1]) - before.value(events[0], **events[1]) == 1
    # Not polled: the task's own route only for the final detail.
    polls = ("vidconv_http_requests_total", {"method": "GET", "status": "200",
                                            "route": "/api/tasks/{task_id}"})
    assert after.value(polls[0], **polls[1]) - before.value(polls[0], **polls[1]) == 1
    lines = run.out.splitlines()
    assert "convert: STARTED" in lines and "convert: SUCCESS" in lines
    # Progress lines with what the stream says besides the percentage: fps, speed, ETA.
    moving = [line for line in lines if line.startswith("convert: ") and "%" in line]
    assert any("fps" in line and "x" in line and "eta " in line for line in moving), \
        "\n".join(lines)
