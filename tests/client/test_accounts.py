"""signup, login, logout: the password never on the command line, the token kept for you only."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

from tests.client.run import Cli

PASSWORD = "correct horse 9"


def test_signup_logs_in_and_keeps_the_token_readable_by_the_user_only(cli: Cli) -> None:
    run = cli("signup", "ana", "--email", "ana@example.com", "--password-stdin",
              stdin=PASSWORD + "\n")
    assert run.code == 0, run
    server = cli.env["VIDCONV_SERVER"]
    assert run.out == (f"signed up as ana\nlogged in to {server} as ana (token kept in "
                       f"{cli.credentials})\n")
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700
    saved = json.loads(cli.credentials.read_text())
    assert saved["server"] == server and saved["username"] == "ana"
    assert saved["token"].count(".") == 2  # a JWT
    assert PASSWORD not in cli.credentials.read_text()
    assert cli("tasks").code == 0  # the kept token is used


def test_login_asks_for_the_password_on_the_terminal_without_echo(cli: Cli, user: str) -> None:
    cli.credentials.unlink()
    run = cli.on_terminal("login", user, typed=[("Password: ", PASSWORD)])
    assert run.code == 0, run.out
    assert "Password: " in run.out and PASSWORD not in run.out  # not echoed
    assert f"logged in to {cli.env['VIDCONV_SERVER']} as {user}" in run.screen
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600


def test_the_password_is_never_an_argument(cli: Cli, user: str) -> None:
    run = cli("login", user, "--password", PASSWORD)
    assert run.code == 2
    assert run.err.endswith("vidconv: error: unrecognized arguments: --password (not shown); a "
                            "password is asked for, or read with --password-stdin\n")
    assert PASSWORD not in run.err  # not even in the error
    piped = cli("login", user)  # no terminal to ask on, and nothing said to read stdin
    assert piped.code == 2
    assert piped.err == ("vidconv: no terminal to ask for the password on; pipe it in with "
                         "--password-stdin\n")


def test_logout_forgets_the_token_and_vidconv_token_still_works(cli: Cli, user: str) -> None:
    token = json.loads(cli.credentials.read_text())["token"]
    assert cli("logout").out == f"logged out (removed {cli.credentials})\n"
    assert not cli.credentials.exists()
    assert cli("tasks").code == 3
    assert cli("tasks", env={"VIDCONV_TOKEN": token}).out == "no tasks\n"
    assert cli("logout").out == "not logged in\n"


def test_a_token_kept_for_one_server_is_never_sent_to_another(cli: Cli, user: str) -> None:
    other = "http://127.0.0.1:9"  # the discard port: nothing answers
    run = cli("tasks", "--server", other)
    assert run.code == 3 and f"not logged in to {other};" in run.err


def test_the_servers_run_without_the_clients_libraries() -> None:
    """The server images lack the client extra: the servers import none of it, and a client
    command says what to install."""
    blocked = ("rich", "httpx_sse", "platformdirs")
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
import vidconv.api.app, vidconv.operator.main, vidconv.transcoder.cli
from vidconv.cli import main
sys.exit(main(sys.argv[1:]))
"""
    run = subprocess.run([sys.executable, "-c", script, "tasks"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2, run
    assert run.stderr == ("vidconv tasks: the command-line client needs its libraries "
                          "(platformdirs): pip install 'vidconv[client]'\n")
    transcode = subprocess.run([sys.executable, "-c", script, "transcode", "--help"],
                               capture_output=True, text=True, timeout=60)
    assert transcode.returncode == 0 and "--format" in transcode.stdout
