"""Object storage: one interface, two backends (a local folder, or S3/MinIO via the minio client).

Keys are relative, slash-separated names such as ``inputs/<task>/clip.mp4``. ``locator(key)``
gives what the transcoder takes as ``--input``/``--output``: a file path or ``s3://bucket/key``.
All methods are blocking; async callers run them in a thread.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from vidconv.settings import Settings

T = TypeVar("T")

CHUNK = 1024 * 1024
STREAM_CHUNK = 4 * CHUNK  # a download through the API: fewer hops to a worker thread per byte
# S3 error codes that mean the access key or secret key is wrong (not a missing permission).
BAD_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch")
# S3 multipart part size when the length is unknown (minio's minimum is 5 MiB).
PART_SIZE = 16 * 1024 * 1024


class StorageError(Exception):
    """Storage is unreachable or refused the request (retryable from the caller's view)."""


class ObjectNotFound(StorageError):
    pass


class Storage(Protocol):
    def put_stream(self, key: str, stream: IO[bytes], length: int = -1) -> int: ...
    def put_file(self, key: str, path: Path) -> int: ...
    def get_file(self, key: str, path: Path) -> int: ...
    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def check(self) -> None: ...
    def locator(self, key: str) -> str: ...
    def keys(self, prefix: str) -> Iterator[str]: ...
    def entries(self, prefix: str) -> Iterator[tuple[str, int]]: ...


# The key layout: every object of a task lives under its id, so a task's objects can be found
# from its id alone and an object from its key's task id (the start-up sweep does).
INPUTS, OUTPUTS = "inputs/", "outputs/"


def input_key(task_id: str, filename: str) -> str:
    return f"{INPUTS}{task_id}/{filename}"


def output_key(task_id: str, filename: str, extension: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return f"{OUTPUTS}{task_id}/{stem or 'output'}.{extension}"


def task_id_of(key: str) -> str | None:
    """The task an ``inputs/`` or ``outputs/`` key belongs to; None for any other key."""
    for prefix in (INPUTS, OUTPUTS):
        if key.startswith(prefix):
            task_id, sep, _rest = key.removeprefix(prefix).partition("/")
            return task_id if sep and task_id else None
    return None


def validate_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise ValueError(f"invalid object key: {key!r}")
    return key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_stream(self, key: str, stream: IO[bytes], length: int = -1) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        written = 0
        try:
            with tmp.open("wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
            os.replace(tmp, path)  # readers never see half an object
        finally:
            tmp.unlink(missing_ok=True)
        return written

    def put_file(self, key: str, path: Path) -> int:
        with path.open("rb") as src:
            return self.put_stream(key, src)

    def get_file(self, key: str, path: Path) -> int:
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFound(key)
        shutil.copyfile(src, path)
        return path.stat().st_size

    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        remaining = (end + 1 - start) if end is not None else None
        with path.open("rb") as f:
            f.seek(start)
            while remaining is None or remaining > 0:
                size = STREAM_CHUNK if remaining is None else min(STREAM_CHUNK, remaining)
                chunk = f.read(size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path.stat().st_size

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop now-empty per-task folders, never the root.
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"{self.root} is not writable")

    def locator(self, key: str) -> str:
        return str(self._path(key))

    def keys(self, prefix: str) -> Iterator[str]:
        """Every object under ``prefix`` (a folder-like ``inputs/``), half-written ones too."""
        for key, _size in self.entries(prefix):
            yield key

    def entries(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under ``prefix``, in one pass."""
        base = self.root / prefix
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                try:
                    if path.is_file():
                        yield path.relative_to(self.root).as_posix(), path.stat().st_size
                except FileNotFoundError:  # removed while we list: it is not there
                    continue


class S3Storage:
    def __init__(self, settings: Settings, bucket: str | None = None) -> None:
        import urllib3
        from minio import Minio

        self.bucket = bucket or settings.s3_bucket
        # Bounded connect timeout and few retries: a dead endpoint must fail fast (readiness,
        # the transcoder's exit 1), not hang for minutes in minio's default retry loop.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=120),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
            maxsize=8,
        )
        self.client = Minio(
            settings.s3_host,
            access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key or None,
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=http,
        )

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a minio call, translating its errors into ours."""
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NoSuchBucket"):
                raise ObjectNotFound(exc.object_name or "") from exc
            if exc.code in BAD_CREDENTIALS:
                raise StorageError(f"S3 refused the credentials ({exc.code}: {exc.message}); "
                                   "check VIDCONV_S3_ACCESS_KEY and VIDCONV_S3_SECRET_KEY") from exc
            raise StorageError(f"S3 error {exc.code}: {exc.message}") from exc
        except (HTTPError, OSError) as exc:
            raise StorageError(f"S3 endpoint unreachable: {exc}") from exc

    def _bucket_exists(self) -> bool:
        from minio.error import S3Error

        try:
            return self.client.bucket_exists(self.bucket)
        except S3Error as exc:
            if exc.code != "AccessDenied":
                raise
        # The answer to a HEAD has no body, so "Access denied" is all minio can tell; the same
        # question as a GET (the first page of top-level names) gets the reason in the error:
        # InvalidAccessKeyId, SignatureDoesNotMatch, or AccessDenied for a key without rights.
        next(iter(self.client.list_objects(self.bucket)), None)
        return True

    def ensure_bucket(self) -> None:
        if not self._call(self._bucket_exists):
            self._call(self.client.make_bucket, self.bucket)

    def put_stream(self, key: str, stream: IO[bytes], length: int = -1) -> int:
        validate_key(key)
        self._call(self.client.put_object, self.bucket, key, stream, length, part_size=PART_SIZE)
        return self.size(key)

    def put_file(self, key: str, path: Path) -> int:
        validate_key(key)
        # fput_object uploads in parts: bounded memory whatever the file size.
        self._call(self.client.fput_object, self.bucket, key, str(path), part_size=PART_SIZE)
        return path.stat().st_size

    def get_file(self, key: str, path: Path) -> int:
        self._call(self.client.fget_object, self.bucket, validate_key(key), str(path))
        return path.stat().st_size

    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        length = 0 if end is None else end + 1 - start
        resp = self._call(
            self.client.get_object, self.bucket, validate_key(key), offset=start, length=length
        )
        try:
            yield from resp.stream(STREAM_CHUNK)
        finally:
            resp.close()
            resp.release_conn()

    def size(self, key: str) -> int:
        size = self._call(self.client.stat_object, self.bucket, validate_key(key)).size
        if size is None:
            raise StorageError(f"S3 reported no size for {key!r}")
        return size

    def delete(self, key: str) -> None:
        self._call(self.client.remove_object, self.bucket, validate_key(key))

    def check(self) -> None:
        if not self._call(self._bucket_exists):
            raise StorageError(f"bucket {self.bucket!r} does not exist")

    def locator(self, key: str) -> str:
        return f"s3://{self.bucket}/{validate_key(key)}"

    def keys(self, prefix: str) -> Iterator[str]:
        for key, _size in self.entries(prefix):
            yield key

    def entries(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under ``prefix``: one listing, no request per object."""
        objects = self._call(self.client.list_objects, self.bucket, prefix=prefix,
                             recursive=True)
        found = self._call(lambda: [(o.object_name, o.size) for o in objects])
        yield from ((name, size or 0) for name, size in found if name)


def make_storage(settings: Settings) -> Storage:
    if settings.storage == "s3":
        return S3Storage(settings)
    if settings.storage == "local":
        return LocalStorage(settings.objects_dir)
    raise ValueError(f"VIDCONV_STORAGE must be 'local' or 's3', not {settings.storage!r}")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    rest = url.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise ValueError(f"not an s3://bucket/key URL: {url!r}")
    return bucket, validate_key(key)
