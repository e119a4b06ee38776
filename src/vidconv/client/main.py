"""The client's subcommands of ``vidconv``, registered without importing their libraries: the
server images lack the ``client`` extra, and ``vidconv serve`` must start without it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vidconv.client.errors import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
)

COMMANDS = ("convert", "signup", "login", "logout", "tasks", "download", "delete")
EPILOG = "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def register(sub: Any) -> None:
    """Add the client's subcommands to ``vidconv``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", metavar="URL",
                        help="the vidconv server (default: VIDCONV_SERVER, else the one you "
                             "logged in to, else http://127.0.0.1:5000)")
    common.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout (for scripts), no progress")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        # No abbreviations: --password must never be taken for --password-stdin.
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help, description=help, parents=[common], epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
        return parser

    convert = add("convert", "upload a video, follow its conversion, download the result")
    convert.add_argument("input", help="the video to convert")
    convert.add_argument("--to", required=True, metavar="FORMAT",
                         help="target format: mp4, webm, mkv, mov, avi, mpeg, wmv, mp3, ... "
                              "(the server's list: GET /api/openapi.json)")
    convert.add_argument("--max-height", type=int, metavar="PIXELS",
                         help="scale down to at most this height")
    convert.add_argument("--quality", type=int, metavar="N", help="quality, 0-100")
    convert.add_argument("--preset", metavar="NAME", help="speed preset: fast, balanced, quality")
    convert.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                         help="any other option (audio=false, start=5, duration=10, "
                              "video_bitrate=800); repeatable")
    convert.add_argument("-o", "--output", metavar="PATH",
                         help="where to save the result (a file or a folder; default: beside "
                              "the input, under a name that is free)")

    for name, text in (("signup", "create an account, and log in to it"),
                       ("login", "log in; the token is kept in your config folder (0600)")):
        parser = add(name, text)
        parser.add_argument("username", nargs="?", help="asked for when not given")
        if name == "signup":
            parser.add_argument("--email", help="asked for when not given")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from stdin's first line (else it is "
                                 "asked for, without echo; it is never an argument)")
    add("logout", "forget the saved token")
    tasks = add("tasks", "list your tasks, newest first")
    tasks.add_argument("--max", type=int, default=50, metavar="N", help="at most N (50)")
    tasks.add_argument("--oldest-first", action="store_true")
    download = add("download", "download a finished task's result")
    download.add_argument("task_id")
    download.add_argument("-o", "--output", metavar="PATH",
                          help="a file or a folder (default: the server's file name here)")
    delete = add("delete", "cancel a task and delete it with its files")
    delete.add_argument("task_id")


def unrecognized(rest: list[str]) -> str:
    """The error for arguments nobody asked for, without their values (one may be a
    password someone tried to pass)."""
    shown = " ".join(a.split("=", 1)[0] for a in rest if a.startswith("-")) or "values"
    hint = ("; a password is asked for, or read with --password-stdin"
            if any("pass" in a.lower() for a in rest if a.startswith("-")) else "")
    return f"unrecognized arguments: {shown} (not shown){hint}"


def run(args: argparse.Namespace) -> int:
    """Run one client command; every failure becomes one line on stderr and its exit code."""
    try:
        from vidconv.client import commands
        from vidconv.client.errors import ClientError
        from vidconv.client.ui import Ui
    except ImportError as exc:
        print(f"vidconv {args.command}: the command-line client needs its libraries "
              f"({exc.name}): pip install 'vidconv[client]'", file=sys.stderr)
        return EXIT_USAGE
    ui = Ui(json_output=args.json)
    try:
        code: int = getattr(commands, args.command)(args, ui)
        return code
    except ClientError as exc:
        ui.error(exc.message, exc.exit_code, exc.details)
        return exc.exit_code
    except KeyboardInterrupt:
        ui.error("interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
