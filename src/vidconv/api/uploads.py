"""Stream a multipart upload to a temp file with bounded memory, and make it an object.

Starlette's form parser spools file parts with no size cap, so the body is parsed here with
python-multipart's streaming parser: file bytes go straight to a temp file in the data dir,
text fields are capped, and the upload stops at ``max_upload_bytes`` (413, nothing kept).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from vidconv.api.services.errors import BadInput, TooLarge, Unsupported
from vidconv.storage import LocalStorage, Storage

FILE_FIELDS = ("file", "fileName")  # the seed course's alias is fileName
MAX_FIELDS_BYTES = 64 * 1024
# Parse in batches of this size off the event loop (file writes may block).
BATCH = 1024 * 1024
# Letters and digits of any script stay (ünï.mp4 stays ünï.mp4); the rest becomes "_".
_UNSAFE = re.compile(r"[^\w.-]+")
MAX_NAME = 255  # characters of a file name, as most file systems allow


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str = ""
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def safe_filename(name: str) -> str:
    """A storage-safe name; names that try to leave their folder are refused (BadInput)."""
    name = unicodedata.normalize("NFC", name).strip()
    if len(name) > MAX_NAME:
        raise BadInput(f"the file name is {len(name)} characters long; at most {MAX_NAME}, "
                       "please")
    if not name or "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise BadInput("the file name must be a plain name, not a path")
    if ".." in name.split("."):
        raise BadInput("the file name must be a plain name, not a path")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = _UNSAFE.sub("_", stem).strip("._") or "input"
    ext = _UNSAFE.sub("", ext)[:16]
    return f"{stem[:100]}.{ext}" if ext else stem[:100]


class _PartCollector:
    """python-multipart callbacks: route each part to a field value or the temp file."""

    def __init__(self, upload: Upload, tmp_dir: Path, max_bytes: int) -> None:
        self.upload, self.tmp_dir, self.max_bytes = upload, tmp_dir, max_bytes
        self.header_field, self.header_value = bytearray(), bytearray()
        self.headers: dict[str, bytes] = {}
        self.name = ""
        self.value: bytearray | None = None
        self.out: IO[bytes] | None = None
        self.fields_bytes = 0
        self.file_complete = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.headers, self.name, self.value = {}, "", None

    def header_end(self) -> None:
        self.headers[self.header_field.decode("latin-1").lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get("content-disposition", b""))
        self.name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None and self.name not in FILE_FIELDS:
            raise BadInput(f"unexpected file part {self.name!r}: send the video as file")
        if filename is not None:
            if self.upload.path is not None:
                raise BadInput("send one file per task")
            self.upload.filename = safe_filename(filename.decode("utf-8", "replace"))
            fd, path = tempfile.mkstemp(prefix="upload-", dir=self.tmp_dir)
            self.upload.path = Path(path)
            self.out = os.fdopen(fd, "wb")
        else:
            self.value = bytearray()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.out is not None:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise TooLarge(self.max_bytes)
            self.out.write(data[start:end])
        elif self.value is not None:
            self.fields_bytes += end - start
            if self.fields_bytes > MAX_FIELDS_BYTES:
                raise BadInput("the form fields are too large")
            self.value.extend(data[start:end])

    def part_end(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
            self.file_complete = True
        elif self.value is not None and self.name:
            self.upload.fields[self.name] = self.value.decode("utf-8", "replace")
        self.value = None

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


async def receive_multipart(request: Request, tmp_dir: Path, max_bytes: int) -> Upload:
    """Parse a multipart/form-data body; the file part ends up in ``Upload.path``."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadInput("multipart body without a boundary")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + MAX_FIELDS_BYTES:
        raise TooLarge(max_bytes)  # refuse before reading a byte
    upload = Upload()
    collector = _PartCollector(upload, tmp_dir, max_bytes)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    batch = bytearray()
    try:
        async for chunk in request.stream():
            batch += chunk
            if len(batch) >= BATCH:
                await anyio.to_thread.run_sync(parser.write, bytes(batch))
                batch.clear()
        if batch:
            await anyio.to_thread.run_sync(parser.write, bytes(batch))
        parser.finalize()
    except MultipartParseError as exc:
        collector.close()
        upload.discard()
        if "header size" in str(exc):  # python-multipart caps each part header at ~4 KiB
            raise BadInput("a part's headers are too long: a file name of at most "
                           f"{MAX_NAME} characters, please") from None
        raise BadInput("the multipart body is malformed") from None
    except BaseException:
        collector.close()
        upload.discard()
        raise
    collector.close()
    if upload.path is not None and not collector.file_complete:
        upload.discard()  # the body ended inside the file part: a truncated file
        raise BadInput("the multipart body is malformed (the file part never ends)")
    return upload


def store_file(storage: Storage, key: str, path: Path) -> int:
    """Make ``path`` the object ``key`` (moved when storage is a local folder); blocking."""
    if isinstance(storage, LocalStorage):
        target = Path(storage.locator(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)  # same disk: a rename, no second copy of a big file
        except OSError:
            shutil.move(path, target)
        return target.stat().st_size
    try:
        return storage.put_file(key, path)
    finally:
        path.unlink(missing_ok=True)


def ensure_multipart_or_json(content_type: str) -> str:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return "multipart"
    if kind == "application/json" or kind.endswith("+json"):
        return "json"
    raise Unsupported("send multipart/form-data (file + conversion_type) or application/json")
