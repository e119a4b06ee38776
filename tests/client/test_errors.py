"""Every API error class, and the client's own failures, as one line on stderr and an exit code
of their own (the table is in `vidconv convert --help`)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import live
from tests.client.run import Cli
from tests.servers import free_port
from vidconv.client.errors import api_error

Clip = Callable[..., Path]


def _file(cli: Cli, name: str, data: bytes) -> Path:
    path = cli.cwd / name
    path.write_bytes(data)
    return path


def test_a_token_the_server_refuses_says_log_in_again(cli: Cli, user: str) -> None:
    run = cli("tasks", env={"VIDCONV_TOKEN": "not-a-token"})
    assert (run.code, run.out) == (3, "")
    assert run.err == ("vidconv: missing or invalid token; log in again (vidconv login) "
                       "[HTTP 401]\n")


def test_no_token_at_all_says_how_to_log_in(cli: Cli) -> None:
    run = cli("tasks")
    assert run.code == 3
    assert run.err == (f"vidconv: not logged in to {cli.env['VIDCONV_SERVER']}; run `vidconv "
                       "login` (or set VIDCONV_TOKEN)\n")


def test_an_unknown_task_is_not_found(cli: Cli, user: str) -> None:
    run = cli("delete", uuid.uuid4().hex)
    assert (run.code, run.err) == (4, "vidconv: task not found [HTTP 404]\n")


def test_a_file_over_the_servers_limit_is_refused_and_nothing_is_left(
    cli: Cli, user: str, server: live.LiveServer
) -> None:
    big = _file(cli, "big.mp4", os.urandom(6 * 1024 * 1024))  # the server takes 5 MiB
    run = cli("convert", str(big), "--to", "webm")
    assert run.code == 7
    assert run.err == ("vidconv: the upload is larger than the limit of 5242880 bytes "
                       "[HTTP 413]\n")
    assert json.loads(cli("tasks", "--json").out) == []


def test_an_empty_file_is_a_bad_request(cli: Cli, user: str) -> None:
    run = cli("convert", str(_file(cli, "empty.mp4", b"")), "--to", "webm")
    assert (run.code, run.err) == (5, "vidconv: the uploaded file is empty [HTTP 400]\n")


def test_an_unknown_format_or_option_value_is_invalid(
    cli: Cli, user: str, make_clip: Clip
) -> None:
    clip = str(make_clip(1.0))
    run = cli("convert", clip, "--to", "gif2")
    assert run.code == 9 and run.err.endswith("[HTTP 422]\n") and "gif2" in run.err, run
    run = cli("convert", clip, "--to", "webm", "--max-height", "5")
    assert run.code == 9 and "max_height" in run.err, run


def test_a_taken_user_name_is_a_conflict(cli: Cli, user: str) -> None:
    run = cli("signup", user, "--email", f"x{user}@example.com", "--password-stdin",
              stdin="another pass 9\n")
    assert run.code == 6 and run.err.endswith("[HTTP 409]\n"), run


def test_too_many_wrong_passwords_say_when_to_try_again(cli: Cli, user: str) -> None:
    for _ in range(5):
        wrong = cli("login", user, "--password-stdin", stdin="wrong password\n")
        assert (wrong.code, wrong.err) == (
            3, "vidconv: wrong user name or password (usuario o contraseña incorrectos) "
               "[HTTP 401]\n")
    run = cli("login", user, "--password-stdin", stdin="correct horse 9\n")
    assert run.code == 10, run
    assert "too many failed log-ins" in run.err and "(try again in " in run.err
    assert run.err.endswith(" s) [HTTP 429]\n")


def test_a_server_whose_storage_is_down_says_try_again(tmp_path: Path, make_clip: Clip) -> None:
    # S3 storage at a port where nothing listens: the server starts, uploads answer 503.
    env = {"VIDCONV_STORAGE": "s3", "VIDCONV_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
           "VIDCONV_S3_ACCESS_KEY": "k" * 20, "VIDCONV_S3_SECRET_KEY": "s" * 40}
    with live.running(tmp_path / "var", env) as down:
        cli = Cli(tmp_path, {"VIDCONV_SERVER": down.url}, cwd=tmp_path)
        assert cli("signup", "ana", "--email", "ana@example.com", "--password-stdin",
                   stdin="correct horse 9\n").code == 0
        run = cli("convert", str(make_clip(1.0)), "--to", "webm")
    assert run.code == 11, run
    assert run.err == ("vidconv: the file storage is unavailable; try again shortly "
                       "(try again in 5 s) [HTTP 503]\n")


def test_no_server_there_is_connection_refused(cli: Cli) -> None:
    where = f"http://127.0.0.1:{free_port()}"
    run = cli("login", "ana", "--password-stdin", "--server", where, stdin="pw\n")
    assert run.code == 13
    assert run.err == (f"vidconv: cannot reach the server at {where}: connection refused (is "
                       "it running? set --server or VIDCONV_SERVER)\n")


def test_a_missing_input_is_a_local_error(cli: Cli, user: str) -> None:
    run = cli("convert", "nowhere.mov", "--to", "webm")
    assert (run.code, run.err) == (14, "vidconv: nowhere.mov: no such file\n")


def test_a_conversion_that_fails_exits_1_with_the_servers_reason(cli: Cli, user: str) -> None:
    notes = _file(cli, "notes.mp4", b"these are not frames\n" * 50)
    run = cli("convert", str(notes), "--to", "webm", "--json")
    assert run.code == 1
    assert "ended FAILURE: " in run.err and "not a video" in run.err
    report = json.loads(run.out)
    assert report["exit_code"] == 1 and report["state"] == "FAILURE"
    assert report["task"]["error_code"] == "unsupported_container"
    assert not (cli.cwd / "notes.webm").exists()


def test_json_errors_are_a_document_too(cli: Cli, user: str) -> None:
    run = cli("download", "nope", "--json")
    assert run.code == 4
    assert json.loads(run.out) == {"error": "task not found [HTTP 404]", "exit_code": 4}


@pytest.mark.parametrize(("status", "code"), [(415, 8), (500, 12), (502, 12)])
def test_the_classes_this_server_never_sends_the_client_still_map(status: int,
                                                                  code: int) -> None:
    # 415 answers a body neither multipart nor JSON, which the client never sends.
    error = api_error(status, "nope")
    assert (error.exit_code, error.message) == (code, f"nope [HTTP {status}]")
