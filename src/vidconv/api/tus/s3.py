"""S3 multipart uploads, one call each, through the storage's own minio client.

minio-py keeps these calls protected (``_create_multipart_upload`` ...): they are what its own
``put_object`` is built on, and have kept their signatures since 7.0. One client, configured once
(endpoint, region, addressing, retries), beats a second S3 SDK (boto3 with botocore: ~100 MB
installed) for five calls; the tests run them against a real MinIO. All calls block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vidconv.storage import S3Storage, StorageError

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3's least part size (all parts but the last)
PART = 8 * MiB  # ours, unless the length needs larger parts
MAX_PARTS = 10_000


def part_size(length: int) -> int:
    """Parts of 8 MiB, larger (whole MiB) when the length would need more than 10 000."""
    return max(PART, math.ceil(length / MAX_PARTS / MiB) * MiB)


def direct_part_size(length: int) -> int:
    """A client's own parts (direct transfers): 16 MiB, larger past 1000 parts, so that the
    list of URLs stays short."""
    return max(2 * PART, math.ceil(length / 1000 / MiB) * MiB)


def part_count(length: int, size: int) -> int:
    return max(1, math.ceil(length / size))


@dataclass(frozen=True)
class StoredPart:
    number: int
    etag: str
    size: int

    def record(self) -> dict[str, Any]:
        return {"n": self.number, "etag": self.etag, "size": self.size}


class Multipart:
    def __init__(self, storage: S3Storage) -> None:
        self.storage, self.client, self.bucket = storage, storage.client, storage.bucket

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # The storage's translation of minio's errors into ours (503s, ObjectNotFound).
        return self.storage._call(fn, *args, **kwargs)

    def create(self, key: str, content_type: str = "application/octet-stream") -> str:
        upload_id: str = self._call(self.client._create_multipart_upload, self.bucket, key,
                                    {"Content-Type": content_type})
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> StoredPart:
        etag = self._call(self.client._upload_part, self.bucket, key, data, None, upload_id,
                          number)
        return StoredPart(number, str(etag), len(data))

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        found: list[StoredPart] = []
        marker: str | None = None
        while True:
            page = self._call(self.client._list_parts, self.bucket, key, upload_id,
                              part_number_marker=marker)
            found += [StoredPart(p.part_number, p.etag, p.size or 0) for p in page.parts]
            if not page.is_truncated:
                return found
            marker = page.next_part_number_marker

    def complete(self, key: str, upload_id: str, parts: list[dict[str, Any]], length: int) -> None:
        """Join the parts into the object; done already (a retry after a crash) is fine."""
        from minio.datatypes import Part

        try:
            self._call(self.client._complete_multipart_upload, self.bucket, key, upload_id,
                       [Part(p["n"], p["etag"]) for p in parts])
        except StorageError as exc:
            if "NoSuchUpload" not in str(exc) or self.storage.size(key) != length:
                raise

    def abort(self, key: str, upload_id: str) -> None:
        try:
            self._call(self.client._abort_multipart_upload, self.bucket, key, upload_id)
        except StorageError as exc:
            if "NoSuchUpload" not in str(exc):
                raise

    def put(self, key: str, data: bytes) -> None:
        import io

        self._call(self.client.put_object, self.bucket, key, io.BytesIO(data), len(data))

    def get(self, key: str) -> bytes:
        resp = self._call(self.client.get_object, self.bucket, key)
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()
