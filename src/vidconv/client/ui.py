"""What the client shows: rich progress bars on a terminal, plain lines when piped, and with
``--json`` nothing but one JSON document on stdout. Errors always go to stderr, one line.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

Transfer = Callable[[int, int | None], None]
OnEvent = Callable[[str, dict[str, Any]], None]
LINE_STEP = 10  # percent between plain progress lines of a conversion
QUARTERS_FROM = 8 * 1024 * 1024  # a transfer this large also gets a plain line every 25 %


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def detail(data: dict[str, Any]) -> str:
    """fps, speed and ETA of a progress event, as far as the server sent them."""
    parts = []
    if isinstance(data.get("fps"), int | float) and data["fps"]:
        parts.append(f"{data['fps']:.0f} fps")
    if isinstance(data.get("speed"), int | float) and data["speed"]:
        parts.append(f"{data['speed']:.2g}x")
    eta = data.get("eta_seconds")
    if isinstance(eta, int | float) and eta >= 0:
        parts.append(f"eta {int(eta) // 60}:{int(eta) % 60:02d}")
    return ", ".join(parts)


class Ui:
    def __init__(self, *, json_output: bool, stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.json = json_output
        self.bars = not json_output and self.out.isatty()
        self.console = Console(file=self.out, highlight=False)

    def say(self, text: str) -> None:
        if self.json:
            return
        if self.bars:
            self.console.print(text, markup=False)
        else:
            print(text, file=self.out, flush=True)

    def error(self, message: str, exit_code: int, details: dict[str, Any] | None = None) -> None:
        print(f"vidconv: {message}", file=self.err, flush=True)
        if self.json:
            self.result({"error": message, "exit_code": exit_code, **(details or {})})

    def result(self, data: Any) -> None:
        """The command's outcome for scripts (``--json``): one JSON document on stdout."""
        if self.json:
            print(json.dumps(data, ensure_ascii=False), file=self.out, flush=True)

    def table(self, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
        if self.json:
            return
        if not self.bars:
            for row in rows:
                print("  ".join(str(row.get(key, "")) for key, _ in columns), file=self.out)
            return
        table = Table(*(title for _, title in columns), box=None, header_style="bold")
        for row in rows:
            table.add_row(*(str(row.get(key, "")) for key, _ in columns))
        self.console.print(table)

    @contextlib.contextmanager
    def transfer(self, label: str) -> Iterator[Transfer]:
        """A bar of bytes (size, rate, time left) for an upload or a download; as plain lines,
        every quarter of a large file and the total at the end."""
        if self.bars:
            with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), TimeRemainingColumn(),
                          console=self.console) as bars:
                task = bars.add_task(label, total=None)

                def show(done: int, total: int | None) -> None:
                    bars.update(task, completed=done, total=total)

                yield show
            return
        started, seen, quarter = time.monotonic(), [0], [0]

        def count(done: int, total: int | None) -> None:
            seen[0] = done
            if total and total >= QUARTERS_FROM and done < total \
                    and done * 4 // total > quarter[0]:
                quarter[0] = done * 4 // total
                self.say(f"{label}: {quarter[0] * 25}% of {size(total)}")

        yield count
        seconds = max(time.monotonic() - started, 1e-3)
        self.say(f"{label}: {size(seen[0])} in {seconds:.1f} s ({size(seen[0] / seconds)}/s)")

    @contextlib.contextmanager
    def conversion(self, label: str) -> Iterator[OnEvent]:
        """A bar of the conversion's percent, with fps, speed and ETA from the event stream."""
        if self.bars:
            with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                          TextColumn("{task.fields[state]}"), TextColumn("{task.fields[detail]}"),
                          console=self.console) as bars:
                task = bars.add_task(label, total=100, state="PENDING", detail="")

                def show(kind: str, data: dict[str, Any]) -> None:
                    if kind == "state" and isinstance(data.get("state"), str):
                        done = 100 if data["state"] == "SUCCESS" else None
                        bars.update(task, state=data["state"], completed=done)
                    elif kind == "progress" and isinstance(data.get("progress"), int | float):
                        bars.update(task, completed=float(data["progress"]),
                                    detail=detail(data))

                yield show
            return
        last = [-LINE_STEP]

        def line(kind: str, data: dict[str, Any]) -> None:
            if kind == "state" and isinstance(data.get("state"), str):
                self.say(f"{label}: {data['state']}")
            elif kind == "progress" and isinstance(data.get("progress"), int | float):
                percent = int(data["progress"])
                if percent >= last[0] + LINE_STEP:
                    last[0] = percent - percent % LINE_STEP
                    extra = detail(data)
                    self.say(f"{label}: {percent}%" + (f" ({extra})" if extra else ""))

        yield line
