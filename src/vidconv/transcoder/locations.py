"""Where the input comes from and the output goes: a local path or ``s3://bucket/key``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vidconv.settings import Settings
from vidconv.storage import ObjectNotFound, S3Storage, StorageError, parse_s3_url
from vidconv.transcoder.errors import BadInput, Retryable


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def _s3(settings: Settings, location: str) -> tuple[S3Storage, str]:
    try:
        bucket, key = parse_s3_url(location)
    except ValueError as exc:
        raise BadInput("invalid_location", f"{location!r} is not an s3://bucket/key URL.") from exc
    return S3Storage(settings, bucket), key


def _too_large(size: int, limit: int) -> BadInput:
    return BadInput("input_too_large",
                    f"The input is {size} bytes, more than the limit of {limit} bytes.")


def fetch(settings: Settings, src: str, dest: Path) -> int:
    """Copy the input into scratch (ffmpeg only ever reads our own copy); return its size."""
    limit = settings.max_input_bytes
    if is_s3(src):
        storage, key = _s3(settings, src)
        try:
            size = storage.size(key)
            if size > limit:
                raise _too_large(size, limit)
            storage.get_file(key, dest)
        except ObjectNotFound as exc:
            raise BadInput("input_not_found", f"The input {src} does not exist.") from exc
        except StorageError as exc:
            raise Retryable("storage_unavailable", f"Could not download the input: {exc}.") from exc
    else:
        source = Path(src)
        if not source.is_file():
            raise BadInput("input_not_found", f"The input {src} does not exist.")
        size = source.stat().st_size
        if size > limit:
            raise _too_large(size, limit)
        try:
            _link_or_copy(source, dest)
        except OSError as exc:
            raise Retryable("scratch_error", f"Could not copy the input: {exc}.") from exc
    size = dest.stat().st_size
    if size > limit:  # the object may have changed between stat and download
        raise _too_large(size, limit)
    return size


def deliver(settings: Settings, path: Path, dst: str) -> int:
    """Upload/copy the finished output; readers never see a partial file."""
    if is_s3(dst):
        storage, key = _s3(settings, dst)
        try:
            return storage.put_file(key, path)  # multipart for large files
        except StorageError as exc:
            raise Retryable("storage_unavailable", f"Could not upload the output: {exc}.") from exc
    target = Path(dst)
    tmp = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)  # same filesystem: an atomic rename, no copy
        except OSError:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise Retryable("output_error", f"Could not write the output {dst}: {exc}.") from exc
    return target.stat().st_size


def basename(location: str) -> str:
    """The file name of a local path or an ``s3://bucket/key``."""
    return location.rstrip("/").rsplit("/", 1)[-1]


def sibling(location: str, name: str) -> str:
    """``name`` in the folder of ``location`` (a task's other outputs sit beside its main)."""
    return f"{location.rsplit('/', 1)[0]}/{name}" if "/" in location else name


def deliver_folder(settings: Settings, folder: Path, main: Path, dst: str) -> int:
    """Deliver every file of ``folder`` beside ``dst``, ``main`` as ``dst`` and last (so a
    reader that sees the main output sees the rest); their total size."""
    others = sorted(p for p in folder.iterdir() if p.is_file() and p != main)
    total = sum(deliver(settings, p, sibling(dst, p.name)) for p in others)
    return total + deliver(settings, main, dst)


def _link_or_copy(source: Path, dest: Path) -> None:
    # A hard link costs nothing and is a snapshot of the file as it is: writers replace
    # objects (new inode) rather than rewrite them. Across filesystems, copy.
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
