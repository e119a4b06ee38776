"""A task's outputs as one zip, streamed as the client reads it (zipstream-ng).

Stored, not deflated: video, audio and pictures are compressed already, so deflate would cost
CPU for nothing. Every size is known from the listing, so the zip's length is known before the
first byte (Content-Length), and memory stays at one storage chunk whatever the package weighs.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from starlette.responses import StreamingResponse
from zipstream import ZIP_STORED, ZipStream

from vidconv import outputs
from vidconv.storage import Storage


def _lazy(storage: Storage, key: str) -> Iterator[bytes]:
    # A generator: the object is opened only when the zip reaches it.
    yield from storage.iter_range(key)


def zip_response(storage: Storage, task_id: str, files: list[outputs.OutputFile],
                 filename: str) -> StreamingResponse:
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    base = outputs.prefix(task_id)
    for f in files:
        archive.add(_lazy(storage, base + f.name), f.name, size=f.size)
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
    headers = {
        "Content-Disposition": (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"),
        "Content-Length": str(len(archive)),
    }
    # A sync iterator: Starlette pulls it in a worker thread, one chunk at a time.
    return StreamingResponse(iter(archive), headers=headers, media_type="application/zip")
