"""Run `vidconv` as a user would: piped (stdin/stdout/stderr are pipes), or on a
pseudo-terminal (the pty module: what a terminal would show, escape codes and all)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

from tests.live import CLEARED

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def screen(self) -> str:
        """The output as text: escape codes out, each carriage-return redraw kept as a line."""
        return ANSI.sub("", self.out).replace("\r\n", "\n").replace("\r", "\n")


class Cli:
    def __init__(self, home: Path, env: dict[str, str], cwd: Path) -> None:
        self.home, self.cwd = home, cwd
        self.env = {**{k: v for k, v in os.environ.items() if k not in CLEARED},
                    "XDG_CONFIG_HOME": str(home / ".config"), "HOME": str(home), **env}

    @property
    def credentials(self) -> Path:
        return self.home / ".config" / "vidconv" / "credentials.json"

    def command(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "vidconv.cli", *args]

    def __call__(self, *args: str, stdin: str = "", env: dict[str, str] | None = None,
                 timeout: float = 180) -> Run:
        proc = subprocess.run(self.command(args), input=stdin, capture_output=True, text=True,
                              env={**self.env, **(env or {})}, cwd=self.cwd, timeout=timeout)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def on_terminal(self, *args: str, typed: list[tuple[str, str]] | None = None,
                    timeout: float = 180) -> Run:
        """Run on a 100x40 pseudo-terminal; ``typed``: (prompt to wait for, line to type)."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        proc = subprocess.Popen(self.command(args), stdin=slave, stdout=slave, stderr=slave,
                                env={**self.env, "TERM": "xterm-256color"}, cwd=self.cwd,
                                start_new_session=True)
        os.close(slave)
        pending = list(typed or [])
        out = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # the child closed the terminal
                        break
                    if not chunk:
                        break
                    out += chunk
                    if pending and pending[0][0].encode() in out:
                        os.write(master, (pending.pop(0)[1] + "\n").encode())
                elif proc.poll() is not None:
                    break
            else:
                proc.kill()
                raise AssertionError(f"vidconv {' '.join(args)} did not end: {out[-2000:]!r}")
            code = proc.wait(timeout=10)
        finally:
            os.close(master)
        text = out.decode("utf-8", "replace")
        return Run(code, text, "")
