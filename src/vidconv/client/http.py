"""The vidconv REST API as Python calls (httpx), every failure a ClientError with its exit code."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import IO, Any

import httpx
from httpx_sse import SSEError, connect_sse

from vidconv import __version__
from vidconv.client.config import Target
from vidconv.client.errors import (
    EXIT_BY_STATUS,
    EXIT_SERVER,
    ClientError,
    api_error,
    local,
    unreachable,
)

FINAL = ("SUCCESS", "FAILURE", "REVOKED")
Progress = Callable[[int, int | None], None]  # bytes so far, total (None: unknown)
OnEvent = Callable[[str, dict[str, Any]], None]  # "progress" or "state", the event's data
RECONNECTS = 5  # an event stream that breaks is resumed (Last-Event-ID) this many times
POLL_SECONDS = 0.5  # a server without the event stream is asked this often


class _Counting:
    """A file that reports how much of it has been read (httpx streams multipart parts)."""

    def __init__(self, file: IO[bytes], total: int, progress: Progress) -> None:
        self.file, self.total, self.progress = file, total, progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.file.read(size)
        self.progress(self.file.tell(), self.total)
        return chunk

    def fileno(self) -> int:  # httpx sizes the part (Content-Length) from the file
        return self.file.fileno()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return response.text.strip()[:300]


def check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        response.read()
        raise api_error(response.status_code, _message(response),
                        response.headers.get("retry-after"))
    return response


def attachment_name(response: httpx.Response, fallback: str) -> str:
    """The file name of a Content-Disposition (RFC 6266, filename* first), as a plain name."""
    header = Message()
    header["content-disposition"] = response.headers.get("content-disposition", "")
    name = Path(str(header.get_filename() or "")).name
    return name if name not in ("", ".", "..") else fallback


class Api:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.http = httpx.Client(
            base_url=target.server, timeout=httpx.Timeout(30.0, read=300.0),
            headers={"User-Agent": f"vidconv-cli/{__version__}"})

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    @property
    def auth(self) -> dict[str, str]:
        if not self.target.token:
            code = EXIT_BY_STATUS[401][0]
            raise ClientError(f"not logged in to {self.target.server}; run `vidconv login` "
                              "(or set VIDCONV_TOKEN)", code, 401)
        return {"Authorization": f"Bearer {self.target.token}"}

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as exc:
            reason = str(exc) or type(exc).__name__
            if "refused" in reason.lower():
                reason = "connection refused"
            raise unreachable(self.target.server, reason) from None
        except httpx.TimeoutException:
            raise unreachable(self.target.server, "no answer in time") from None
        except httpx.TransportError as exc:
            raise unreachable(self.target.server, str(exc) or type(exc).__name__) from None

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        with self._reaching():
            return check(self.http.request(method, url, **kwargs))

    # -- accounts ------------------------------------------------------------------------------

    def signup(self, username: str, email: str, password: str) -> dict[str, Any]:
        body = {"username": username, "email": email, "password1": password,
                "password2": password}
        return dict(self._call("POST", "/api/auth/signup", json=body).json())

    def login(self, username: str, password: str) -> str:
        r = self._call("POST", "/api/auth/login", json={"username": username,
                                                       "password": password})
        return str(r.json()["token"])

    # -- tasks ----------------------------------------------------------------------------------

    def tasks(self, limit: int, newest_first: bool) -> list[dict[str, Any]]:
        r = self._call("GET", "/api/tasks", headers=self.auth,
                       params={"max": limit, "order": 1 if newest_first else 0})
        return list(r.json()["tasks"])

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/tasks/{task_id}", headers=self.auth).json())

    def delete(self, task_id: str) -> None:
        self._call("DELETE", f"/api/tasks/{task_id}", headers=self.auth)

    def upload(self, path: Path, fmt: str, options: dict[str, str],
               progress: Progress) -> str:
        """Start a conversion of ``path``; its task id. ``progress`` sees the bytes go out."""
        auth = self.auth
        try:
            file = path.open("rb")
        except OSError as exc:
            raise local(f"cannot read {path}: {exc.strerror or exc}") from None
        with file:
            total = os.fstat(file.fileno()).st_size
            counting = _Counting(file, total, progress)
            r = self._call("POST", "/api/tasks", headers=auth,
                           files={"file": (path.name, counting, "application/octet-stream")},
                           data={"conversion_type": fmt, **options})
        return str(r.json()["task_id"])

    def follow(self, task_id: str, on_event: OnEvent) -> dict[str, Any]:
        """Follow the task's event stream until it ends; then its detail.

        The server closes a stream now and then (and a proxy may): it is resumed from the last
        event (Last-Event-ID). Only streams that break count towards giving up, and a server
        without the stream (older than the client) is polled instead.
        """
        last_id, failures = "", 0
        while True:
            headers = {**self.auth, "Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            try:
                with self._reaching(), connect_sse(
                        self.http, "GET", f"/api/tasks/{task_id}/events", headers=headers,
                        timeout=httpx.Timeout(30.0, read=120.0)) as source:
                    response = source.response
                    if response.status_code in (404, 405) and self._lacks_events(task_id):
                        return self._poll(task_id, on_event)
                    check(response)
                    if response.status_code == 204:  # the end was in what we saw already
                        return self.task(task_id)
                    heard = False
                    for sse in source.iter_sse():
                        heard = True
                        last_id = sse.id or last_id
                        data = json.loads(sse.data) if sse.data.strip() else {}
                        if not isinstance(data, dict):
                            continue
                        on_event(sse.event, data)
                        if sse.event == "state" and data.get("state") in FINAL:
                            return self.task(task_id)
                if heard:  # closed by the server before the end: resume at once
                    failures = 0
                    continue
                failures += 1  # closed with nothing said: do not hammer it
                if failures > RECONNECTS:
                    return self._poll(task_id, on_event)
            except ClientError as exc:
                failures += 1
                if exc.status is not None or failures > RECONNECTS:
                    raise  # the server said no; or it stayed away
            except (SSEError, ValueError) as exc:
                raise ClientError(f"the server's event stream is not readable: {exc}",
                                  EXIT_SERVER) from None
            time.sleep(min(0.25 * 2.0 ** failures, 5.0))

    def _lacks_events(self, task_id: str) -> bool:
        """A 404 of the stream, but the task is there: this server has no event stream."""
        self.task(task_id)  # raises the task's own 404 when it is the task that is missing
        return True

    def _poll(self, task_id: str, on_event: OnEvent) -> dict[str, Any]:
        state = ""
        while True:
            detail = self.task(task_id)
            if detail["state"] != state:
                state = detail["state"]
                on_event("state", {"state": state})
            if state in FINAL:
                return detail
            on_event("progress", {"progress": detail.get("progress") or 0})
            time.sleep(POLL_SECONDS)

    def download(self, task_id: str, dest: Callable[[str], Path],
                 progress: Progress) -> Path:
        """Save the task's output where ``dest(server's file name)`` says; written whole or
        not at all (a temp file beside it, renamed at the end)."""
        auth = self.auth
        with self._reaching(), self.http.stream(
                "GET", "/api/download", params={"task_id": task_id}, headers=auth) as r:
            check(r)
            target = dest(attachment_name(r, f"{task_id}.out"))
            length = r.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            except OSError as exc:
                raise local(f"cannot write into {target.parent}: {exc.strerror or exc}") \
                    from None
            try:
                done = 0
                with os.fdopen(fd, "wb") as out:
                    for chunk in r.iter_bytes():
                        out.write(chunk)
                        done += len(chunk)
                        progress(done, total)
                os.chmod(tmp, 0o644 & ~_umask())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
