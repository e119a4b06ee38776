"""Direct transfers: short-lived presigned S3 URLs, so that bytes go between the client and S3
and the API only signs (``VIDCONV_DIRECT_TRANSFERS=on``, S3 storage only).

The URLs are signed for the endpoint clients reach S3 at (``VIDCONV_S3_PUBLIC_ENDPOINT``; the
API's own endpoint is often a cluster-internal name), by a minio client of their own: with its
region given, signing is pure computation, no request to S3.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import anyio.to_thread
from starlette.responses import RedirectResponse, Response

from vidconv import formats
from vidconv.api.errors import ApiError
from vidconv.settings import Settings
from vidconv.storage import ObjectNotFound, Storage


class Presigner:
    def __init__(self, settings: Settings) -> None:
        from minio import Minio

        endpoint = settings.s3_public_endpoint or settings.s3_endpoint
        self.bucket = settings.s3_bucket
        self.lifetime = timedelta(seconds=settings.direct_url_seconds)
        self.client = Minio(
            endpoint.split("://", 1)[-1].rstrip("/"),
            access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key or None,
            secure=endpoint.startswith("https://"),
            region=settings.s3_region,
        )

    def download(self, key: str, filename: str, content_type: str) -> str:
        """A GET URL for ``key`` that S3 answers as the API would (attachment, its type)."""
        ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
        disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
        return self.client.presigned_get_object(
            self.bucket, key, expires=self.lifetime,
            response_headers={"response-content-disposition": disposition,
                              "response-content-type": content_type})

    def part(self, key: str, upload_id: str, number: int) -> str:
        """A PUT URL for part ``number`` of the multipart upload ``upload_id``."""
        return self.client.get_presigned_url(
            "PUT", self.bucket, key, expires=self.lifetime,
            extra_query_params={"partNumber": str(number), "uploadId": upload_id})


def make_presigner(settings: Settings) -> Presigner | None:
    if settings.direct_transfers not in ("on", "off"):
        raise ValueError("VIDCONV_DIRECT_TRANSFERS must be 'on' or 'off', "
                         f"not {settings.direct_transfers!r}")
    if settings.direct_transfers == "off":
        return None
    if settings.storage != "s3":
        raise ValueError("VIDCONV_DIRECT_TRANSFERS=on needs VIDCONV_STORAGE=s3: the client "
                         "talks to S3 itself")
    return Presigner(settings)


async def redirect_download(
    presigner: Presigner, storage: Storage, key: str, filename: str, fmt: str
) -> Response:
    """307 to a presigned URL of the object: the client fetches it from S3 (Range and all)."""
    try:
        await anyio.to_thread.run_sync(storage.size, key)
    except ObjectNotFound:
        raise ApiError(409, "the converted file is missing; convert again") from None
    profile = formats.FORMATS.get(fmt)
    url = presigner.download(key, filename, profile.mime_type if profile else
                             "application/octet-stream")
    return RedirectResponse(url, 307, headers={"Cache-Control": "no-store"})
