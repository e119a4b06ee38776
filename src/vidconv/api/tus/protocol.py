"""The tus 1.0 wire format: versions, extensions, metadata, checksums, dates; the PATCH body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from vidconv.api.services.errors import BadInput

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
CHECKSUMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
MAX_METADATA = 4096  # bytes of Upload-Metadata

# A key is any printable ASCII but space and comma; a value, when present, is base64.
_KEY = r"[!-+\--~]+"
_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_PAIR = rf"{_KEY}(?: {_BASE64})?"
METADATA_PATTERN = rf"^(?:{_PAIR}(?:,{_PAIR})*)?$"  # empty: no metadata
CHECKSUM_PATTERN = rf"^({'|'.join(CHECKSUMS)}) {_BASE64}$"


def parse_metadata(header: str) -> dict[str, bytes]:
    """``Upload-Metadata`` (``key base64,key2``) as key -> decoded value; BadInput if malformed."""
    header = header.strip()
    if not header:
        return {}
    if len(header) > MAX_METADATA:
        raise BadInput(f"Upload-Metadata is longer than {MAX_METADATA} characters")
    if not re.fullmatch(METADATA_PATTERN, header):
        raise BadInput("Upload-Metadata must be comma-separated 'key base64value' pairs")
    found: dict[str, bytes] = {}
    for pair in header.split(","):  # a key given twice: the last one counts
        key, _, value = pair.partition(" ")
        found[key] = base64.b64decode(value) if value else b""
    return found


class Checksum:
    """``Upload-Checksum: <algorithm> <base64 digest>`` of one request's body."""

    def __init__(self, header: str) -> None:
        algorithm, _, digest = header.strip().partition(" ")
        if algorithm not in CHECKSUMS:
            raise BadInput(f"Upload-Checksum: the algorithm must be one of {', '.join(CHECKSUMS)}")
        try:
            self.expected = base64.b64decode(digest, validate=True)
        except binascii.Error:
            raise BadInput("Upload-Checksum: the digest must be base64") from None
        self.hash: Any = CHECKSUMS[algorithm]()

    def update(self, data: bytes | bytearray) -> None:
        self.hash.update(data)

    def matches(self) -> bool:
        return bool(self.hash.digest() == self.expected)


def http_date(moment: datetime) -> str:
    """RFC 9110's IMF-fixdate, as Upload-Expires wants it."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


class Batch(list[bytes]):
    """Chunks as they came, at least a batch's worth: written with one writev, never joined."""

    size = 0


class Body:
    """A request body in batches of at least ``batch`` bytes (fewer thread hops per byte);
    a client that goes away mid-body ends it, with ``interrupted`` set."""

    def __init__(self, chunks: AsyncIterator[bytes], batch: int = 1024 * 1024) -> None:
        self.chunks, self.batch = chunks, batch
        self.interrupted = False

    async def __aiter__(self) -> AsyncIterator[Batch]:
        from starlette.requests import ClientDisconnect

        pending = Batch()
        try:
            async for chunk in self.chunks:
                pending.append(chunk)
                pending.size += len(chunk)
                if pending.size >= self.batch:
                    yield pending
                    pending = Batch()
        except ClientDisconnect:
            self.interrupted = True
        if pending.size:
            yield pending
