"""Where the bytes of one PATCH go: appended to a file in the data dir, or S3 multipart parts.

A sink starts from what the row says storage holds (``State``), takes the request's bytes,
and says at each checkpoint what storage now durably holds; the service saves that in the row.
All methods block (the service runs them in a worker thread).

S3 takes a multipart upload in parts of at least 5 MiB (all but the last), while a tus client
may send chunks of any size, and a cut connection ends a chunk anywhere. What is left over
after the last whole part (less than one part) is kept aside as a small object of its own, a
*segment*, listed in the row; the next request that fills a part reads the segments back in
front of its own bytes. Kept in S3 rather than in the API's memory or disk because the next
chunk may reach another replica, and rather than in the database because a blob of up to a
part per upload is S3's job, not PostgreSQL's. Each byte is written once as a segment and
read back once; a client sending many tiny chunks gets its segments merged now and then.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from vidconv.api.tus.rows import State
from vidconv.api.tus.s3 import Multipart
from vidconv.api.uploads import store_file
from vidconv.db.models import Upload
from vidconv.storage import Storage

MAX_SEGMENTS = 16  # then they are merged into one
IOV_MAX = 1024  # buffers per writev (Linux's limit)


class Sink(Protocol):
    def write(self, chunks: list[bytes]) -> None: ...
    def checkpoint(self) -> State: ...
    def finish(self) -> State: ...
    def complete(self) -> State: ...
    def after_save(self, state: State) -> None: ...
    def close(self) -> None: ...


class LocalSink:
    """Appends to ``<data dir>/uploads/<id>``; the finished file is renamed into storage."""

    def __init__(self, path: Path, storage: Storage, row: Upload) -> None:
        self.path, self.storage, self.key = path, storage, row.storage_key
        self.offset = row.upload_offset
        self.fd = os.open(path, os.O_WRONLY)
        # Bytes past the recorded offset are a request's that never checkpointed them.
        os.ftruncate(self.fd, self.offset)
        os.lseek(self.fd, self.offset, os.SEEK_SET)

    def write(self, chunks: list[bytes]) -> None:
        # One system call per batch (of at most IOV_MAX chunks), none of it copied.
        views = [memoryview(c) for c in chunks if c]
        first = 0
        while first < len(views):
            written = os.writev(self.fd, views[first:first + IOV_MAX])
            self.offset += written
            while first < len(views) and written >= len(views[first]):
                written -= len(views[first])
                first += 1
            if written:
                views[first] = views[first][written:]

    def checkpoint(self) -> State:
        return State(self.offset)

    def finish(self) -> State:
        self.close()
        return State(self.offset)

    def complete(self) -> State:
        self.close()
        store_file(self.storage, self.key, self.path)  # a rename: same disk
        return State(self.offset)

    def after_save(self, state: State) -> None:
        pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class S3Sink:
    """Whole parts go to the multipart upload as they fill; the rest waits as segments."""

    def __init__(self, multipart: Multipart, row: Upload, token: str) -> None:
        assert row.multipart_id is not None
        self.mp, self.key, self.upload_id = multipart, row.storage_key, row.multipart_id
        self.id, self.token, self.size = row.id, token, row.part_size
        self.parts = list(row.parts)
        self.segments = list(row.segments)
        self.buf = bytearray()
        self.consumed: list[str] = []  # segment keys joined into parts since the last state

    @property
    def _held(self) -> int:
        return sum(int(s["size"]) for s in self.segments)

    @property
    def _parts_end(self) -> int:
        return sum(int(p["size"]) for p in self.parts)

    def _take_segments(self) -> bytearray:
        data = bytearray()
        for segment in self.segments:
            data += self.mp.get(segment["key"])[: int(segment["size"])]
        self.consumed += [s["key"] for s in self.segments]
        self.segments = []
        return data

    def _upload(self, data: bytes | bytearray) -> None:
        part = self.mp.upload_part(self.key, self.upload_id, len(self.parts) + 1, bytes(data))
        self.parts.append(part.record())

    def write(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.buf += chunk
        while self._held + len(self.buf) >= self.size:
            need = self.size - self._held
            body = self._take_segments() + self.buf[:need]
            del self.buf[:need]
            self._upload(body)

    def checkpoint(self) -> State:
        # Bytes still in memory are not stored yet: the offset stops before them.
        garbage, self.consumed = self.consumed, []
        return State(self._parts_end + self._held, list(self.parts), list(self.segments),
                     garbage)

    def finish(self) -> State:
        """End of a request short of the end of the upload: keep its leftover as a segment."""
        if self.buf:
            if len(self.segments) >= MAX_SEGMENTS:
                self.buf[:0] = self._take_segments()
            start = self._parts_end + self._held
            key = f"uploads/{self.id}/{start}-{self.token[:8]}"
            self.mp.put(key, bytes(self.buf))
            self.segments.append({"key": key, "offset": start, "size": len(self.buf)})
            self.buf = bytearray()
        return self.checkpoint()

    def complete(self) -> State:
        """The last bytes are in: the last part (smaller is fine), then the object."""
        body = self._take_segments() + self.buf
        self.buf = bytearray()
        if body or not self.parts:
            self._upload(body)
        total = self._parts_end
        self.mp.complete(self.key, self.upload_id, self.parts, total)
        garbage, self.consumed = self.consumed, []
        return State(total, list(self.parts), [], garbage)

    def after_save(self, state: State) -> None:
        for key in state.garbage:
            self.mp.storage.delete(key)

    def close(self) -> None:
        self.buf = bytearray()
