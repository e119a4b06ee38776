"""A real webhook receiver on loopback: an HTTP server that keeps every request it gets and
answers as a test tells it to (a status, headers, a delay, or hold until released).

Shared through ``pytest_plugins`` (tests/conftest.py): the fixture ``receiver`` is one server
per test.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Reply:
    """How to answer one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (longer than the sender waits: a timeout)
    hold: bool = False  # answer only once release() is called


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the body was in
    answered: int | None = None  # the status sent back (None: never answered)

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: list[Reply] = []
        self.default = Reply()
        self._lock = threading.Condition()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
                length = int(self.headers.get("content-length") or 0)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                               self.rfile.read(length), time.time())
                with receiver._lock:
                    receiver.requests.append(got)
                    reply = receiver._script.pop(0) if receiver._script else receiver.default
                    receiver._lock.notify_all()
                if reply.hold:
                    receiver._released.wait()
                time.sleep(reply.delay)
                with contextlib.suppress(OSError):  # the sender may have given up meanwhile
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    got.answered = reply.status

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order; then with ``default``."""
        with self._lock:
            self._script.extend(replies)

    def release(self) -> None:
        self._released.set()

    def wait_for(self, count: int, timeout: float = 60.0,
                 where: Callable[[Received], bool] = lambda r: True) -> list[Received]:
        """The requests (matching ``where``) once there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(found := [r for r in self.requests if where(r)]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} of {count} webhook requests came: "
                                         f"{[r.body[:200] for r in self.requests]}")
                self._lock.wait(left)
            return found

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()
