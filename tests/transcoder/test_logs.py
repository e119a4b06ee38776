"""The transcoder's log (stderr): JSON lines with the task id when asked for, text otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.transcoder.helpers import transcode

Clip = Callable[..., Path]


def test_json_log_lines_parse_and_carry_the_task_id_from_the_executor(
    tmp_path: Path, make_clip: Clip, env: dict[str, str]
) -> None:
    env = {**env, "VIDCONV_LOG_FORMAT": "json", "VIDCONV_TASK_ID": "4f1c0ffee"}
    run = transcode(make_clip(1.0), tmp_path / "out.mp3", "mp3", env=env)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stderr.splitlines()]  # every line parses
    assert len(records) >= 3, run.stderr
    assert all(r["task_id"] == "4f1c0ffee" and r["logger"] == "vidconv.transcoder"
               for r in records), records
    assert any(r["message"].startswith("running ") for r in records)
    assert records[-1]["message"].startswith("done in ")


def test_a_failure_is_logged_in_json_too(tmp_path: Path, env: dict[str, str]) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 40)
    env = {**env, "VIDCONV_LOG_FORMAT": "json", "VIDCONV_TASK_ID": "t-9"}
    run = transcode(notes, tmp_path / "out.webm", "webm", env=env)
    assert run.returncode == 2
    records = [json.loads(line) for line in run.stderr.splitlines()]
    assert all(r["task_id"] == "t-9" for r in records), records
    assert records[-1]["message"].startswith("failed in ")
    assert "not a video" in records[-1]["message"]


def test_text_is_the_default(tmp_path: Path, make_clip: Clip, env: dict[str, str]) -> None:
    run = transcode(make_clip(1.0), tmp_path / "out.mp3", "mp3", env=env)
    assert run.returncode == 0
    assert " INFO vidconv.transcoder: running " in run.stderr
    assert not run.stderr.lstrip().startswith("{")
