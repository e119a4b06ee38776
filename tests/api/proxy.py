"""A TCP proxy on a loopback port that cuts connections mid-request, the way a mobile link does.

Each new connection goes to the next upstream in turn (two API replicas behind one address,
as behind a Service). ``cut_at`` lists totals of client-to-server bytes: the connection that
carries the byte at each total is reset there (RST, both ways), mid-body. The first bytes of
each connection are kept, so a test can read which request it was and its Upload-Offset.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from dataclasses import dataclass, field

HEAD_BYTES = 4096


@dataclass
class Request:
    method: str
    offset: int | None  # its Upload-Offset header, if any
    upstream: int  # the port it went to


@dataclass
class CuttingProxy:
    upstreams: list[int]
    cut_at: list[int] = field(default_factory=list)
    sent: int = 0  # client-to-server bytes forwarded so far
    cut: list[Request] = field(default_factory=list)  # the requests whose connection was cut
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                port = self.upstreams[self._next % len(self.upstreams)]
                self._next += 1
            server = socket.create_connection(("127.0.0.1", port))
            threading.Thread(target=self._upstream, args=(client, server, port),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket, port: int) -> None:
        head = bytearray()
        request: Request | None = None
        try:
            while data := client.recv(256 * 1024):
                if request is None:
                    head += data[:HEAD_BYTES]
                    if b"\r\n\r\n" in head or len(head) >= HEAD_BYTES:
                        request = self._record(bytes(head), port)
                with self._lock:
                    cut = next((c for c in self.cut_at if self.sent < c <= self.sent + len(data)),
                               None)
                    keep = len(data) if cut is None else cut - self.sent
                    self.sent += keep
                    if cut is not None and request is not None:
                        self.cut.append(request)
                server.sendall(data[:keep])
                if cut is not None:
                    _reset(client)
                    _reset(server)
                    return
        except OSError:
            pass
        _close(client, server)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(256 * 1024):
                target.sendall(data)
        except OSError:
            pass
        _close(source, target)

    def _record(self, head: bytes, port: int) -> Request:
        method = head.split(b" ", 1)[0].decode("latin-1")
        found = re.search(rb"\r\nupload-offset:\s*(\d+)", head, re.IGNORECASE)
        request = Request(method, int(found[1]) if found else None, port)
        with self._lock:
            self.requests.append(request)
        return request


def _reset(sock: socket.socket) -> None:
    """Close with an RST (linger 0): the peer sees the connection end mid-request. The
    shutdown wakes the other pump thread out of its recv(), else the socket would stay open
    until that returns."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
