"""Stream an object as an attachment, with single-range HTTP Range support (206 / 416), in
large chunks read one ahead of the socket."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import cast
from urllib.parse import quote

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from vidconv.api.errors import ApiError
from vidconv.storage import ObjectNotFound, Storage

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for one satisfiable range; None to send everything.

    Several ranges or a malformed header: ignore it and send the whole file (RFC 9110 allows
    that). A well-formed single range that misses the file raises 416.
    """
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or (not match[1] and not match[2]):
        return None
    first, last = match[1], match[2]
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise ApiError(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise ApiError(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
    return start, end


async def read_ahead(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` (blocking reads) with the next one read in a worker thread while the one
    before is being sent: the socket never waits for a read (uvicorn has no sendfile; a
    read-then-send loop leaves it idle for each read and thread hop)."""
    done = object()
    pending = asyncio.ensure_future(anyio.to_thread.run_sync(next, chunks, done))
    try:
        while (chunk := await pending) is not done:
            pending = asyncio.ensure_future(anyio.to_thread.run_sync(next, chunks, done))
            yield cast(bytes, chunk)
    finally:
        # A client gone mid-download cancels us: the read in flight ends first (a generator
        # runs in one thread at a time), then the file or S3 response is closed.
        with anyio.CancelScope(shield=True):
            await asyncio.wait([pending])
            close = getattr(chunks, "close", None)
            if close is not None:
                await anyio.to_thread.run_sync(close)


async def object_response(
    request: Request, storage: Storage, key: str, filename: str, media_type: str, *,
    disposition: str = "attachment", headers: dict[str, str] | None = None,
) -> Response:
    """The object, ranged; ``disposition`` inline for players, ``headers`` added."""
    try:
        size = await anyio.to_thread.run_sync(storage.size, key)
    except ObjectNotFound:
        raise ApiError(409, "the converted file is missing; convert again") from None
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
    headers = {
        **(headers or {}),
        "Content-Disposition": (
            f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
        ),
        "Accept-Ranges": "bytes",
    }
    status, start, end = 200, 0, size - 1
    wanted = request.headers.get("range")
    if wanted:
        chosen = parse_range(wanted, size)
        if chosen is not None:
            status, (start, end) = 206, chosen
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end + 1 - start))
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    body = read_ahead(storage.iter_range(key, start, end))
    return StreamingResponse(body, status, headers=headers, media_type=media_type)
