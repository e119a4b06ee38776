"""The executor/transcoder contract: one result type, one environment allow-list, one argv."""

from __future__ import annotations

import json

from vidconv import contract
from vidconv.contract import Phase, Progress, Result, parse_line
from vidconv.db.models import TaskState
from vidconv.settings import Settings
from vidconv.transcoder.errors import BadInput, Retryable


def test_a_result_reads_back_as_written() -> None:
    ok = Result(ok=True, output="s3://b/outputs/t/a.webm", size=12, duration=2.0,
                input_duration=2.04, video_codec="vp9", audio_codec="opus", format="webm",
                command=["ffmpeg", "-y"], ffmpeg="/usr/bin/ffmpeg", ffmpeg_source="PATH")
    line = ok.dumps()
    assert json.loads(line)["event"] == "result" and json.loads(line)["status"] == "ok"
    assert parse_line(line) == ok
    failed = Result.failure("no_video", "The input has no video stream.")
    assert parse_line(failed.dumps()) == failed
    assert json.loads(failed.dumps()) == {"event": "result", "status": "error",
                                          "error": "The input has no video stream.",
                                          "code": "no_video"}


def test_damaged_lines_are_not_mistaken_for_results() -> None:
    assert parse_line(b"not json") is None
    assert parse_line("[1, 2]") is None
    assert parse_line('{"event": "progress", "progress": "x"}') == Progress(0.0)
    odd = parse_line('{"event": "result", "status": "ok", "size": "big", "duration": true}')
    assert odd == Result(ok=True)


def test_the_environment_is_an_allow_list_without_the_servers_secrets() -> None:
    settings = Settings(jwt_secret="s3cret", database_url="postgresql://u:p@db/x",
                        s3_access_key="AK", s3_secret_key="SK", storage="s3")
    inherited = {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "no", "VIDCONV_JWT_SECRET": "no"}
    env = contract.transcoder_env(settings, inherit=inherited)
    assert env["PATH"] == "/bin" and env["VIDCONV_STORAGE"] == "s3"
    assert env["VIDCONV_S3_ACCESS_KEY"] == "AK"
    values = " ".join(env.values())
    assert "s3cret" not in values and "postgresql" not in values and "no" not in env.values()
    assert "VIDCONV_S3_SECRET_KEY" not in contract.transcoder_env(settings, secrets=False)
    # Every variable is one the transcoder's Settings reads back.
    assert Settings.from_env(env).s3_secret_key == "SK"


def test_exit_codes_phases_and_states_agree() -> None:
    assert BadInput("x", "y").exit_code == contract.EXIT_BAD_INPUT
    assert Retryable("x", "y").exit_code == contract.EXIT_RETRYABLE
    assert {p.state for p in Phase} == {s.value for s in TaskState}
    assert [p for p in Phase if p.finished] == [Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED]


def test_one_argv_whatever_the_order_of_the_options() -> None:
    a = contract.transcoder_command("python", "in", "out", "mp4", {"quality": 80, "audio": False})
    b = contract.transcoder_command("python", "in", "out", "mp4", {"audio": False, "quality": 80})
    assert a == b == ["python", "-m", "vidconv.transcoder", "--input", "in", "--output", "out",
                      "--format", "mp4", "--option", "audio=false", "--option", "quality=80"]
