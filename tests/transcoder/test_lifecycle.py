"""Stopping, timing out and reporting: ffmpeg never outlives the transcoder, scratch is removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ffmpeg_path
from tests.transcoder.helpers import command, parse, transcode


@pytest.fixture
def slow_ffmpeg(tmp_path: Path) -> str:
    """Real ffmpeg reading its input at real-time speed: a conversion lasts the clip's length."""
    real = ffmpeg_path()
    folder = tmp_path / "slow-bin"
    folder.mkdir()
    wrapper = folder / "ffmpeg"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -progress "*) exec {real} -readrate 1 "$@";; esac\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    probe = Path(real).with_name("ffprobe")
    if probe.exists():
        (folder / "ffprobe").symlink_to(probe)
    return str(wrapper)


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_sigterm_mid_conversion_stops_ffmpeg_and_cleans_scratch(
        slow_ffmpeg: str, make_clip: Callable[..., Path], tmp_path: Path, scratch: Path,
        env: dict[str, str]) -> None:
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen(command(str(make_clip(seconds=3.0)), str(out), "mp4"),
                            env={**env, "VIDCONV_FFMPEG": slow_ffmpeg},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # wait until ffmpeg is really converting
        lines.append(line)
        if json.loads(line).get("out_time", 0) > 0:
            break
    assert processes_mentioning(str(scratch)), "ffmpeg should be running on the scratch copy"
    proc.send_signal(signal.SIGTERM)
    rest, stderr = proc.communicate(timeout=30)
    events = parse("".join(lines) + rest)
    assert proc.returncode == 1, stderr
    assert events[-1]["status"] == "error" and events[-1]["code"] == "terminated"
    assert processes_mentioning(str(scratch)) == []  # ffmpeg is gone too
    assert list(scratch.iterdir()) == [] and not out.exists()


def test_timeout_kills_ffmpeg(slow_ffmpeg: str, make_clip: Callable[..., Path], tmp_path: Path,
                              scratch: Path, env: dict[str, str]) -> None:
    out = tmp_path / "o.mp4"
    run = transcode(make_clip(seconds=3.0), out, "mp4",
                    env={**env, "VIDCONV_FFMPEG": slow_ffmpeg,
                         "VIDCONV_TRANSCODE_TIMEOUT_SECONDS": "1"})
    assert run.returncode == 2 and run.result["code"] == "timeout", run.stdout
    assert "1 s limit" in run.result["error"]
    assert processes_mentioning(str(scratch)) == [] and not out.exists()


def test_progress_arrives_while_converting(
        slow_ffmpeg: str, make_clip: Callable[..., Path], tmp_path: Path,
        env: dict[str, str]) -> None:
    run = transcode(make_clip(seconds=3.0), tmp_path / "o.mp4", "mp4",
                    env={**env, "VIDCONV_FFMPEG": slow_ffmpeg})
    assert run.returncode == 0, run.stderr
    middle = [p for p in run.progress if 0 < p < 100]
    assert middle, run.progress  # a 3 s conversion reports along the way, not only 0 and 100
    events = [e for e in run.lines if e["event"] == "progress"]
    assert {"progress", "fps", "speed", "out_time"} <= set(events[1])
    assert run.progress[-1] == 100 and run.result["status"] == "ok"


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_result_goes_to_the_termination_log(
        fmt: str, make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")  # Kubernetes creates the file; the transcoder only writes to it
    run = transcode(make_clip(seconds=1.0), tmp_path / f"o.{fmt}", fmt,
                    env={**env, "VIDCONV_TERMINATION_LOG": str(log)})
    written = log.read_bytes()
    assert 0 < len(written) < 4096
    message = json.loads(written)
    assert message["status"] == run.result["status"]
    assert message.get("code") == run.result.get("code")
    assert message.get("size") == run.result.get("size")


def test_no_termination_log_is_created_outside_a_pod(
        make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "termination-log"
    run = transcode(make_clip(seconds=1.0), tmp_path / "o.mp3", "mp3",
                    env={**env, "VIDCONV_TERMINATION_LOG": str(log)})
    assert run.returncode == 0 and not log.exists()
    assert os.path.exists(tmp_path / "o.mp3")


def test_termination_message_stays_under_4_kb_even_for_huge_errors() -> None:
    from vidconv.transcoder.report import compact_result

    huge = {"event": "result", "status": "error", "error": "x" * 20000, "code": "conversion_failed"}
    message = compact_result(huge)
    assert len(message) < 4096 and json.loads(message)["code"] == "conversion_failed"
    detailed = {**huge, "error": "A sentence.", "detail": "ffmpeg said " * 2000 + "at last"}
    message = compact_result(detailed)
    kept = json.loads(message)
    assert len(message) < 4096 and kept["error"] == "A sentence."
    assert kept["detail"].endswith("at last")  # its last words are what an operator needs
    ok = {"event": "result", "status": "ok", "output": "s3://b/k", "command": ["-y"] * 2000}
    message = compact_result(ok)
    assert len(message) < 4096 and json.loads(message)["output"] == "s3://b/k"


def test_conversion_finishes_when_nobody_reads_stdout_any_more(
        make_clip: Callable[..., Path], tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "o.mp4"
    log = tmp_path / "termination-log"
    log.write_text("")
    proc = subprocess.Popen(command(str(make_clip(seconds=1.0)), str(out), "mp4"),
                            env={**env, "VIDCONV_TERMINATION_LOG": str(log)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the parent went away
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert out.exists() and json.loads(log.read_text())["status"] == "ok"
