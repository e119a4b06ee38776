"""Which server, and the token that logs you in to it.

``vidconv login`` keeps the server's URL, your user name and the token in
``<user config dir>/vidconv/credentials.json`` (platformdirs: ``~/.config/vidconv`` on Linux,
``$XDG_CONFIG_HOME`` respected), readable by you only (0600, in a 0700 folder), written whole
or not at all. ``VIDCONV_SERVER`` and ``VIDCONV_TOKEN`` override what is kept there, and
``--server`` overrides both.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_config_path

from vidconv.client.errors import local

DEFAULT_SERVER = "http://127.0.0.1:5000"
FILE_NAME = "credentials.json"


def config_dir() -> Path:
    return user_config_path("vidconv", appauthor=False)


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


@dataclass(frozen=True)
class Saved:
    server: str = ""
    token: str = ""
    username: str = ""


def load() -> Saved:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Saved()
    except (OSError, ValueError) as exc:
        raise local(f"cannot read {path}: {exc}; remove it and log in again") from None
    if not isinstance(data, dict):
        return Saved()
    return Saved(str(data.get("server") or ""), str(data.get("token") or ""),
                 str(data.get("username") or ""))


def save(saved: Saved) -> Path:
    """Write the credentials file with mode 0600 from its first byte (never world-readable)."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / FILE_NAME
    text = json.dumps({"server": saved.server, "username": saved.username,
                       "token": saved.token}, indent=2)
    fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=folder)  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def forget() -> bool:
    """Remove the saved token; False when there was none."""
    path = credentials_path()
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def normalize(server: str) -> str:
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "http://" + server
    return server


@dataclass(frozen=True)
class Target:
    """The server a command talks to, and the token for it (empty: not logged in there)."""

    server: str
    token: str
    username: str = ""


def resolve(flag: str | None, environ: Mapping[str, str] | None = None) -> Target:
    """``--server`` > ``VIDCONV_SERVER`` > the saved server > the default; ``VIDCONV_TOKEN`` >
    the saved token, which counts only for the server it was saved for."""
    env = os.environ if environ is None else environ
    saved = load()
    server = normalize(flag or env.get("VIDCONV_SERVER") or saved.server or DEFAULT_SERVER)
    token = env.get("VIDCONV_TOKEN", "")
    username = ""
    if not token and saved.token and normalize(saved.server or DEFAULT_SERVER) == server:
        token, username = saved.token, saved.username
    return Target(server, token, username)
