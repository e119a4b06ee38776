"""The client's commands: each takes the parsed arguments and the Ui, and returns an exit code
(or raises a ClientError, which ``vidconv.client.main`` turns into one line and its code)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from vidconv.client import config
from vidconv.client.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ClientError, local
from vidconv.client.http import Api
from vidconv.client.ui import Ui, size


def _password(args: argparse.Namespace, confirm: bool = False) -> str:
    """From stdin (--password-stdin, for scripts) or asked without echo; never an argument."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ClientError("--password-stdin: nothing was read from stdin", EXIT_USAGE)
        return password
    if not sys.stdin.isatty():
        raise ClientError("no terminal to ask for the password on; pipe it in with "
                          "--password-stdin", EXIT_USAGE)
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Password (again): ") != password:
        raise ClientError("the two passwords differ", EXIT_USAGE)
    return password


def _ask(value: str | None, prompt: str) -> str:
    if value:
        return value
    if not sys.stdin.isatty():
        raise ClientError(f"{prompt.lower()} is required", EXIT_USAGE)
    return input(f"{prompt}: ").strip()


def _log_in(api: Api, ui: Ui, username: str, password: str) -> None:
    try:
        token = api.login(username, password)
    except ClientError as exc:
        if exc.status != 401:
            raise
        raise ClientError(f"wrong user name or password ({exc.reason}) [HTTP 401]",
                          exc.exit_code, 401) from None
    path = config.save(config.Saved(api.target.server, token, username))
    ui.say(f"logged in to {api.target.server} as {username} (token kept in {path})")
    ui.result({"server": api.target.server, "username": username, "credentials": str(path)})


def signup(args: argparse.Namespace, ui: Ui) -> int:
    target = config.resolve(args.server)
    username = _ask(args.username, "User name")
    email = _ask(args.email, "E-mail")
    password = _password(args, confirm=True)
    with Api(target) as api:
        api.signup(username, email, password)
        ui.say(f"signed up as {username}")
        _log_in(api, ui, username, password)
    return 0


def login(args: argparse.Namespace, ui: Ui) -> int:
    target = config.resolve(args.server)
    username = _ask(args.username, "User name (or e-mail)")
    password = _password(args)
    with Api(target) as api:
        _log_in(api, ui, username, password)
    return 0


def logout(args: argparse.Namespace, ui: Ui) -> int:
    path = config.credentials_path()
    removed = config.forget()
    ui.say(f"logged out (removed {path})" if removed else "not logged in")
    ui.result({"logged_out": removed})
    return 0


def tasks(args: argparse.Namespace, ui: Ui) -> int:
    with Api(config.resolve(args.server)) as api:
        rows = api.tasks(args.max, newest_first=not args.oldest_first)
    if not rows:
        ui.say("no tasks")
    ui.table(rows, [("task_id", "TASK"), ("conversion_type", "FORMAT"), ("status", "STATE")])
    ui.result(rows)
    return 0


def delete(args: argparse.Namespace, ui: Ui) -> int:
    with Api(config.resolve(args.server)) as api:
        api.delete(args.task_id)
    ui.say(f"deleted {args.task_id}")
    ui.result({"deleted": args.task_id})
    return 0


def free_name(path: Path) -> Path:
    """``path``, or ``stem-1.ext``, ``stem-2.ext``, ... when it exists: never overwrite."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def destination(output: str | None, folder: Path, name: str, source: Path | None = None) -> Path:
    """Where a download goes: ``-o`` (a file, or a folder to put ``name`` in), else ``name``
    in ``folder`` under a name that is free. The input is never written over."""
    if output:
        target = Path(output)
        if target.is_dir():
            target = target / name
    else:
        target = free_name(folder / name)
    if source is not None and target.exists() and target.resolve() == source.resolve():
        raise local(f"{target} is the input; choose another -o")
    if not target.parent.is_dir():
        raise local(f"{target.parent}: no such folder")
    return target


def _save(api: Api, ui: Ui, task_id: str, output: str | None, folder: Path,
          source: Path | None = None) -> Path:
    with ui.transfer("download") as bar:
        saved = api.download(task_id, lambda name: destination(output, folder, name, source),
                             bar)
    ui.say(f"saved {saved} ({size(saved.stat().st_size)})")
    return saved


def download(args: argparse.Namespace, ui: Ui) -> int:
    with Api(config.resolve(args.server)) as api:
        saved = _save(api, ui, args.task_id, args.output, Path.cwd())
    ui.result({"task_id": args.task_id, "output": str(saved.resolve()),
               "size": saved.stat().st_size})
    return 0


def _options(args: argparse.Namespace) -> dict[str, str]:
    options: dict[str, str] = {}
    for key in ("max_height", "quality", "preset"):
        value = getattr(args, key)
        if value is not None:
            options[key] = str(value)
    for pair in args.option:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ClientError(f"--option {pair!r} is not KEY=VALUE", EXIT_USAGE)
        options[key] = value
    return options


def convert(args: argparse.Namespace, ui: Ui) -> int:
    source = Path(args.input)
    if not source.is_file():
        raise local(f"{source}: no such file")
    options = _options(args)
    target = config.resolve(args.server)
    with Api(target) as api:
        api.auth  # noqa: B018 - not logged in: say so before anything else
        ui.say(f"{source.name} ({size(source.stat().st_size)}) to {args.to} on {target.server}")
        with ui.transfer("upload") as bar:
            task_id = api.upload(source, args.to, options, bar)
        ui.say(f"task {task_id}")
        try:
            with ui.conversion("convert") as show:
                detail = api.follow(task_id, show)
        except KeyboardInterrupt:
            raise ClientError(f"stopped following; task {task_id} goes on (vidconv download "
                              f"{task_id}, or vidconv delete {task_id})",
                              EXIT_INTERRUPTED) from None
        if detail["state"] != "SUCCESS":
            why = detail.get("error") or detail["state"].lower()
            raise ClientError(f"task {task_id} ended {detail['state']}: {why}", EXIT_FAILED,
                              details={"task_id": task_id, "state": detail["state"],
                                       "task": detail})
        saved = _save(api, ui, task_id, args.output, source.parent, source)
    result: dict[str, Any] = {"task_id": task_id, "state": detail["state"],
                              "output": str(saved.resolve()), "size": saved.stat().st_size,
                              "task": detail}
    ui.result(result)
    return 0
