"""Direct uploads: the client PUTs the parts of an S3 multipart upload to presigned URLs, and
the API only signs them and, at the end, checks what S3 holds and completes it.

The row is the same as a tus upload's (``direct`` set), so the limits, the expiry sweep,
termination and ``POST /api/tasks {"upload": id}`` work alike. S3 itself says which parts it
holds and their sizes (ListParts): the client needs to keep no ETags, and a part re-sent
replaces the earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import anyio.to_thread

from vidconv.api.context import AppContext
from vidconv.api.direct import Presigner
from vidconv.api.services import uploads
from vidconv.api.services.errors import BadInput, Conflict, Unsupported
from vidconv.api.tus import rows
from vidconv.api.tus.rows import State
from vidconv.api.tus.s3 import StoredPart, part_count
from vidconv.db.models import Upload, utcnow


@dataclass(frozen=True)
class PartUrl:
    part: int
    size: int
    url: str


@dataclass(frozen=True)
class Plan:
    """Where each missing part goes, and until when the URLs work."""

    part_size: int
    parts: list[PartUrl]
    urls_expire_at: datetime


def _presigner(ctx: AppContext) -> Presigner:
    if ctx.presigner is None:
        raise Unsupported("direct transfers are off on this server: send the bytes with tus "
                          "(application/offset+octet-stream)")
    return ctx.presigner


def _expected(row: Upload) -> dict[int, int]:
    """Part number -> the size it must have: all full but the last."""
    count = part_count(row.length, row.part_size)
    return {n: min(row.part_size, row.length - (n - 1) * row.part_size)
            for n in range(1, count + 1)}


def _stored(ctx: AppContext, row: Upload) -> dict[int, StoredPart]:
    s3 = uploads.multipart(ctx)
    assert s3 is not None and row.multipart_id is not None
    return {p.number: p for p in s3.list_parts(row.storage_key, row.multipart_id)}


def _plan(ctx: AppContext, row: Upload, stored: dict[int, StoredPart]) -> Plan:
    presigner = _presigner(ctx)
    assert row.multipart_id is not None
    missing = [(n, size) for n, size in _expected(row).items()
               if n not in stored or stored[n].size != size]
    expires = utcnow() + presigner.lifetime
    return Plan(row.part_size, [PartUrl(n, size, presigner.part(row.storage_key,
                                                                row.multipart_id, n))
                                for n, size in missing], expires)


async def create(ctx: AppContext, owner: str, length: int, filename: str | None
                 ) -> tuple[Upload, Plan]:
    _presigner(ctx)
    row = await uploads.create(ctx, owner, length, "", direct=True, filename=filename)
    return row, await anyio.to_thread.run_sync(_plan, ctx, row, {})


def _direct(ctx: AppContext, owner: str, upload_id: str) -> Upload:
    row = rows.get_owned(ctx.sessions, owner, upload_id)
    if not row.direct:
        raise Conflict("this upload takes its bytes here (tus PATCH), not from S3")
    if row.completed_at is not None:
        raise Conflict("the upload is complete already")
    return row


def _refresh(ctx: AppContext, owner: str, upload_id: str) -> tuple[Upload, Plan]:
    row = _direct(ctx, owner, upload_id)
    _presigner(ctx)
    plan = _plan(ctx, row, _stored(ctx, row))
    rows.touch(ctx.sessions, row.id, uploads.expiry(ctx))
    return rows.get_owned(ctx.sessions, owner, upload_id), plan


async def refresh(ctx: AppContext, owner: str, upload_id: str) -> tuple[Upload, Plan]:
    """Fresh URLs for the parts S3 does not hold yet (whole); the upload lives on."""
    return await anyio.to_thread.run_sync(_refresh, ctx, owner, upload_id)


def _complete(ctx: AppContext, row: Upload, token: str) -> uploads.Progress:
    stored = _stored(ctx, row)
    expected = _expected(row)
    missing = [n for n in expected if n not in stored]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise Conflict(f"part(s) {shown} of {len(expected)} are not uploaded yet")
    for n, part in sorted(stored.items()):
        if n not in expected:
            raise BadInput(f"part {n} is past the last part ({len(expected)})")
        if part.size != expected[n]:
            raise BadInput(f"part {n} holds {part.size} bytes, not {expected[n]}: upload it "
                           "again")
    records = [stored[n].record() for n in sorted(stored)]
    s3 = uploads.multipart(ctx)
    assert s3 is not None and row.multipart_id is not None
    s3.complete(row.storage_key, row.multipart_id, records, row.length)
    expires = rows.save(ctx.sessions, row.id, token, State(row.length, records, []),
                        uploads.expiry(ctx), release=True, completed=True)
    return uploads.Progress(row.length, row.length, expires)


async def complete(ctx: AppContext, owner: str, upload_id: str) -> uploads.Progress:
    """Join the parts S3 holds into the object, once each is there whole."""
    token = await uploads.acquire(ctx, owner, upload_id)
    try:
        row = await anyio.to_thread.run_sync(rows.read_locked, ctx.sessions, upload_id, token)
        if not row.direct:
            raise Conflict("this upload takes its bytes here (tus PATCH), not from S3")
        if row.completed_at is not None:
            return uploads.progress(row)
        return await anyio.to_thread.run_sync(_complete, ctx, row, token)
    finally:
        await anyio.to_thread.run_sync(rows.release, ctx.sessions, upload_id, token)

