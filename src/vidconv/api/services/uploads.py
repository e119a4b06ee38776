"""Resumable (tus) uploads: create one, write a chunk, terminate it, hand a finished one on.

The row (``vidconv.api.tus.rows``) says what storage durably holds; a request writes only
while it holds the row's lease, and saves its progress about once a second, so a cut
connection or a killed replica loses at most the last second's bytes, which the client sends
again from the offset HEAD tells it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import anyio.to_thread

from vidconv import storage as keys
from vidconv.api.context import AppContext
from vidconv.api.services.errors import (
    BadInput,
    ChecksumMismatch,
    Conflict,
    NotFound,
    Throttled,
    TooLarge,
    Unauthenticated,
)
from vidconv.api.services.users import user_exists
from vidconv.api.tus import rows
from vidconv.api.tus.protocol import Batch, Body, Checksum, parse_metadata
from vidconv.api.tus.rows import State
from vidconv.api.tus.s3 import Multipart, direct_part_size, part_size
from vidconv.api.tus.sinks import LocalSink, S3Sink, Sink
from vidconv.api.uploads import safe_filename
from vidconv.db.models import Upload, new_id, utcnow
from vidconv.storage import ObjectNotFound, S3Storage, StorageError

log = logging.getLogger("vidconv.api")

LOCK_WAIT = 5.0  # seconds a chunk waits for the request before it (often one that was cut)
CHECKPOINT = 1.0  # seconds between saves of the offset while bytes flow


@dataclass(frozen=True)
class Progress:
    offset: int
    length: int
    expires_at: datetime


def progress(row: Upload) -> Progress:
    return Progress(row.upload_offset, row.length, rows.aware(row.expires_at))


def expiry(ctx: AppContext) -> timedelta:
    return timedelta(seconds=ctx.settings.upload_expiry_seconds)


def partial_path(ctx: AppContext, upload_id: str) -> Path:
    """Local storage: where an unfinished upload's bytes are appended."""
    return ctx.settings.data_dir / "uploads" / upload_id


def multipart(ctx: AppContext) -> Multipart | None:
    return Multipart(ctx.storage) if isinstance(ctx.storage, S3Storage) else None


def _filename(metadata: dict[str, bytes]) -> str:
    """The name from ``filename`` (or ``name``) metadata: its last path part, made safe."""
    raw = (metadata.get("filename") or metadata.get("name") or b"").decode("utf-8", "replace")
    return plain_name(raw)


def plain_name(raw: str) -> str:
    """A client's file name as a storage-safe one: its last path part, "upload" if nothing is
    left (a tus client's metadata is informational: a path in it is not refused)."""
    raw = raw.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    try:
        return safe_filename(raw[-200:])
    except BadInput:
        return "upload"


async def check_new(ctx: AppContext, owner: str, length: int) -> None:
    limit = ctx.settings.max_upload_bytes
    if length > limit:
        raise TooLarge(limit)
    if length < 1:
        raise BadInput("Upload-Length must be at least 1: an empty file converts to nothing")
    if not await anyio.to_thread.run_sync(user_exists, ctx.sessions, owner):
        raise Unauthenticated("the token's user no longer exists")
    live = await anyio.to_thread.run_sync(rows.open_uploads, ctx.sessions, owner)
    if len(live) >= ctx.settings.max_open_uploads:
        wait = math.ceil((live[0] - utcnow()).total_seconds())
        raise Throttled(f"you have {len(live)} uploads not yet made a task, the most allowed; "
                        "finish or delete one (DELETE /api/uploads/<id>), or wait for the "
                        "oldest to expire", max(1, wait))


async def create(ctx: AppContext, owner: str, length: int, metadata_header: str,
                 *, direct: bool = False, filename: str | None = None) -> Upload:
    """A new, empty upload of ``length`` bytes (tus creation; ``direct``: the client sends
    its parts to S3 itself, vidconv.api.services.direct_uploads)."""
    metadata = parse_metadata(metadata_header)
    await check_new(ctx, owner, length)
    name = plain_name(filename) if filename is not None else _filename(metadata)
    row = Upload(id=new_id(), owner_id=owner, task_id=new_id(), length=length,
                 upload_offset=0, metadata_header=metadata_header.strip(),
                 filename=name, part_size=0, parts=[], segments=[],
                 direct=direct, expires_at=utcnow() + expiry(ctx))
    row.storage_key = keys.input_key(row.task_id, row.filename)
    s3 = multipart(ctx)
    if s3 is not None:
        row.part_size = direct_part_size(length) if direct else part_size(length)
        row.multipart_id = await anyio.to_thread.run_sync(s3.create, row.storage_key)
    else:
        path = partial_path(ctx, row.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
    try:
        await anyio.to_thread.run_sync(rows.insert, ctx.sessions, row)
    except BaseException:
        await anyio.to_thread.run_sync(discard_stored, ctx, row)
        raise
    return row


async def acquire(ctx: AppContext, owner: str, upload_id: str) -> str:
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        token = await anyio.to_thread.run_sync(rows.try_acquire, ctx.sessions, owner, upload_id)
        if token is not None:
            return token
        if time.monotonic() >= deadline:
            raise Conflict("another request is writing to this upload; ask for its offset "
                           "(HEAD) and try again")
        await anyio.sleep(0.1)


def _open_sink(ctx: AppContext, row: Upload, token: str) -> Sink | None:
    """The sink for the next bytes; None when a crash came between moving the finished file
    into storage and saving that (the row is saved as complete now)."""
    s3 = multipart(ctx)
    if s3 is not None:
        return S3Sink(s3, row, token)
    path = partial_path(ctx, row.id)
    if path.exists():
        return LocalSink(path, ctx.storage, row)
    try:
        whole = ctx.storage.size(row.storage_key) == row.length
    except ObjectNotFound:
        whole = False
    if not whole:
        raise NotFound("the upload's bytes are gone; create it again")
    rows.save(ctx.sessions, row.id, token, State(row.length), expiry(ctx), completed=True)
    return None


async def write(ctx: AppContext, owner: str, upload_id: str, offset: int, body: Body,
                checksum: Checksum | None, declared: int | None) -> Progress:
    """Append a request's body at ``offset`` (tus PATCH); where the upload now stands."""
    token = await acquire(ctx, owner, upload_id)
    sink: Sink | None = None
    try:
        row = await anyio.to_thread.run_sync(rows.read_locked, ctx.sessions, upload_id, token)
        if row.direct:
            raise Conflict("this upload's parts go to storage directly: upload them to the "
                           "URLs it was given, then complete it")
        if row.completed_at is not None and offset == row.length and not declared:
            return progress(row)
        if offset != row.upload_offset:
            raise Conflict(f"Upload-Offset is {offset} but the upload holds "
                           f"{row.upload_offset} bytes; resume from there")
        if declared is not None and offset + declared > row.length:
            raise TooLarge(row.length, f"the chunk ends past Upload-Length ({row.length} bytes)")
        sink = await anyio.to_thread.run_sync(_open_sink, ctx, row, token)
        if sink is None:
            return progress(await anyio.to_thread.run_sync(
                rows.read_locked, ctx.sessions, upload_id, token))
        return await _pump(ctx, row, token, sink, body, checksum)
    finally:
        if sink is not None:
            await anyio.to_thread.run_sync(sink.close)
        await anyio.to_thread.run_sync(rows.release, ctx.sessions, upload_id, token)


def _take(sink: Sink, checksum: Checksum | None, batch: Batch) -> None:
    if checksum is not None:
        for chunk in batch:
            checksum.update(chunk)
    sink.write(batch)


async def _save(ctx: AppContext, row: Upload, token: str, sink: Sink, state: State,
                *, final: bool = False, completed: bool = False) -> datetime:
    expires = await anyio.to_thread.run_sync(
        lambda: rows.save(ctx.sessions, row.id, token, state, expiry(ctx),
                          release=final, completed=completed))
    await anyio.to_thread.run_sync(sink.after_save, state)
    return expires


async def _pump(ctx: AppContext, row: Upload, token: str, sink: Sink, body: Body,
                checksum: Checksum | None) -> Progress:
    received = row.upload_offset
    saved_at = time.monotonic()
    # A checkpoint is saved beside the bytes, not in their way: a commit that waits for the
    # disk (fsync while the upload itself is being written back) must not stall the upload.
    saving: asyncio.Task[datetime] | None = None
    try:
        async for batch in body:
            if received + batch.size > row.length:
                raise TooLarge(row.length,
                               f"the chunk ends past Upload-Length ({row.length} bytes)")
            await anyio.to_thread.run_sync(_take, sink, checksum, batch)
            received += batch.size
            # Checkpoints only without a checksum: with one, nothing counts until all is
            # checked.
            if (checksum is None and received < row.length
                    and time.monotonic() - saved_at >= CHECKPOINT
                    and (saving is None or saving.done())):
                if saving is not None:
                    saving.result()  # a lost lease stops the request here
                state = await anyio.to_thread.run_sync(sink.checkpoint)
                saving = asyncio.create_task(_save(ctx, row, token, sink, state))
                saved_at = time.monotonic()
    finally:
        if saving is not None:
            await asyncio.wait([saving])  # the last state saved before the next one
    if saving is not None:
        saving.result()
    if checksum is not None and (body.interrupted or not checksum.matches()):
        # Nothing of this request is saved: the row still says where the last one ended.
        raise ChecksumMismatch("the chunk does not match its Upload-Checksum; send it again")
    if received == row.length:
        state = await anyio.to_thread.run_sync(sink.complete)
        expires = await _save(ctx, row, token, sink, state, final=True, completed=True)
    else:
        state = await anyio.to_thread.run_sync(sink.finish)
        expires = await _save(ctx, row, token, sink, state, final=True)
    return Progress(state.offset, row.length, expires)


def discard_stored(ctx: AppContext, row: Upload) -> None:
    """Remove whatever storage holds of the upload (idempotent; blocking)."""
    s3 = multipart(ctx)
    if s3 is None:
        partial_path(ctx, row.id).unlink(missing_ok=True)
    else:
        if row.multipart_id and row.completed_at is None:
            s3.abort(row.storage_key, row.multipart_id)
        for key in list(ctx.storage.keys(f"uploads/{row.id}/")):
            ctx.storage.delete(key)
    if row.completed_at is not None:
        try:
            ctx.storage.delete(row.storage_key)
        except ObjectNotFound:
            pass


async def terminate(ctx: AppContext, owner: str, upload_id: str) -> None:
    """tus termination: the upload's bytes and its row are gone."""
    token = await acquire(ctx, owner, upload_id)
    try:
        row = await anyio.to_thread.run_sync(rows.read_locked, ctx.sessions, upload_id, token)
        await anyio.to_thread.run_sync(discard_stored, ctx, row)
        await anyio.to_thread.run_sync(
            lambda: rows.remove(ctx.sessions, upload_id, only_expired=False))
    finally:
        await anyio.to_thread.run_sync(rows.release, ctx.sessions, upload_id, token)


def finished(ctx: AppContext, owner: str, upload_id: str) -> Upload:
    """The caller's upload, all of it stored (else Conflict saying how far it got)."""
    row = rows.get_owned(ctx.sessions, owner, upload_id)
    if row.completed_at is None:
        raise Conflict(f"the upload is not finished: {row.upload_offset} of {row.length} bytes "
                       "are stored")
    return row


def sweep_expired(ctx: AppContext) -> int:
    """Remove the expired uploads from storage, then their rows; how many. Blocking."""
    removed = 0
    for row in rows.expired(ctx.sessions):
        try:
            discard_stored(ctx, row)
        except StorageError as exc:
            log.warning("upload %s expired but could not be removed yet: %s", row.id, exc)
            continue
        removed += rows.remove(ctx.sessions, row.id, only_expired=True)
    if removed:
        log.info("removed %d expired upload(s)", removed)
    return removed
