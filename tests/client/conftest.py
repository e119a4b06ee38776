"""The command-line client against a real `vidconv serve`, as a user runs it: a subprocess,
piped or on a pseudo-terminal, with its own config folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import live
from tests.client.run import Cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.LiveServer]:
    """One server for a module's tests (each test signs up a user of its own)."""
    with live.running(tmp_path_factory.mktemp("server") / "var") as running:
        yield running


@pytest.fixture
def cli(server: live.LiveServer, tmp_path: Path) -> Cli:
    """The client with a config folder of its own, pointed at the server, not logged in."""
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home, {"VIDCONV_SERVER": server.url}, cwd=tmp_path)


@pytest.fixture
def user(cli: Cli) -> str:
    """A signed-up user whose token the client keeps."""
    name = "u" + uuid.uuid4().hex[:10]
    run = cli("signup", name, "--email", f"{name}@example.com", "--password-stdin",
              stdin="correct horse 9\n")
    assert run.code == 0, run
    return name
