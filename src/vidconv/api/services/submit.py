"""Creating and deleting tasks: input to storage, row, hand-over to the executor."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import anyio.to_thread

from vidconv import formats, outputs, storage
from vidconv.api import schemas
from vidconv.api.context import AppContext
from vidconv.api.fetch import download, is_url
from vidconv.api.services import tasks, uploads, webhooks
from vidconv.api.services.errors import BadInput, NotFound, Unauthenticated, Unavailable
from vidconv.api.services.users import user_exists
from vidconv.api.tus import rows
from vidconv.api.uploads import safe_filename, store_file
from vidconv.db import updates
from vidconv.db.models import Task, new_id
from vidconv.storage import ObjectNotFound, StorageError

log = logging.getLogger("vidconv.api")


async def require_account(ctx: AppContext, owner: str) -> None:
    """The token's user still exists (else Unauthenticated); call it before reading a large
    body."""
    if not await anyio.to_thread.run_sync(user_exists, ctx.sessions, owner):
        raise Unauthenticated("the token's user no longer exists")


async def create_from_file(
    ctx: AppContext, owner: str, fmt: str, options: dict[str, Any], filename: str, path: Path,
    callback_url: str | None = None,
) -> str:
    """A task converting an uploaded file (``path``, moved into storage); its id."""
    return await _create(ctx, owner, fmt, options, filename, path, callback_url)


def _check_reference(ref: str, url_inputs: str) -> None:
    """What the document says ``file`` may be: a plain name of yours, or an http(s) URL."""
    if is_url(ref):
        if url_inputs == "off":
            raise BadInput("URL inputs are turned off on this server")
        if not re.match(schemas.URL_PATTERN, ref):
            raise BadInput("only http and https URLs are accepted as input")
    elif not re.match(schemas.FILE_NAME_PATTERN, ref) or len(ref) > 255:
        raise BadInput("file must be the name of one of your uploads or an http(s) URL, "
                       "not a path")


async def create_from_reference(
    ctx: AppContext, owner: str, ref: str, fmt: str, options: dict[str, Any],
    callback_url: str | None = None,
) -> str:
    """A task converting one of the caller's earlier uploads, or an http(s) URL; its id."""
    _check_reference(ref, ctx.settings.url_inputs)
    await require_account(ctx, owner)
    # Before a download: a callback without a signing secret is refused at once.
    await anyio.to_thread.run_sync(webhooks.callback_for, ctx.sessions, owner, callback_url)
    if is_url(ref):
        path, name = await download(
            ref, ctx.upload_dir, ctx.settings.max_upload_bytes, ctx.settings.url_inputs
        )
    else:
        path, name = await _copy_previous_upload(ctx, owner, ref.strip())
    try:
        if path.stat().st_size == 0:
            raise BadInput("the input file is empty")
        return await _create(ctx, owner, fmt, options, safe_filename(name), path, callback_url)
    finally:
        path.unlink(missing_ok=True)


async def _copy_previous_upload(ctx: AppContext, owner: str, ref: str) -> tuple[Path, str]:
    """Never a server path: ``ref`` only ever names one of the caller's own uploads."""
    source = await anyio.to_thread.run_sync(tasks.find_previous_upload, ctx.sessions, owner, ref)
    if source is None:
        raise NotFound(f"no uploaded file of yours is named {ref!r}")
    fd, name = tempfile.mkstemp(prefix="copy-", dir=ctx.upload_dir)
    os.close(fd)  # get_file (re)writes the path itself
    try:
        await anyio.to_thread.run_sync(ctx.storage.get_file, source.input_key, Path(name))
    except ObjectNotFound:
        Path(name).unlink(missing_ok=True)
        raise NotFound(f"the uploaded file {ref!r} is no longer stored") from None
    except BaseException:  # storage down (503): no temp file left behind either
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), source.original_filename or source.input_key.rsplit("/", 1)[-1]


async def _create(
    ctx: AppContext, owner: str, fmt: str, options: dict[str, Any], filename: str, path: Path,
    callback_url: str | None,
) -> str:
    # The task's callback is fixed now: the one given, else the account's default.
    callback = await anyio.to_thread.run_sync(
        webhooks.callback_for, ctx.sessions, owner, callback_url)
    task_id = new_id()
    in_key = storage.input_key(task_id, filename)
    # Object first, row second: a row is only ever visible with its input stored, and a
    # database outage at the insert below takes the object back out (nothing kept).
    size = await anyio.to_thread.run_sync(store_file, ctx.storage, in_key, path)
    task = Task(
        id=task_id,
        owner_id=owner,
        conversion_type=fmt,
        options=options,
        original_filename=filename,
        input_key=in_key,
        output_key=storage.output_key(task_id, outputs.main_stem(fmt, filename),
                                      formats.FORMATS[fmt].extension),
        input_size=size,
        callback_url=callback,
    )
    try:
        await anyio.to_thread.run_sync(tasks.insert_task, ctx.sessions, task)
    except BaseException:
        await anyio.to_thread.run_sync(_discard_objects, ctx, task)
        raise
    await _schedule(ctx, task_id)
    return task_id


async def create_from_upload(
    ctx: AppContext, owner: str, upload_id: str, fmt: str, options: dict[str, Any],
    callback_url: str | None = None,
) -> str:
    """A task converting a finished resumable upload: its object is the input as it lies
    (its key was chosen for this task when the upload was created), never copied."""
    await require_account(ctx, owner)
    callback = await anyio.to_thread.run_sync(
        webhooks.callback_for, ctx.sessions, owner, callback_url)
    row = await anyio.to_thread.run_sync(uploads.finished, ctx, owner, upload_id)
    task = Task(
        id=row.task_id,
        owner_id=owner,
        conversion_type=fmt,
        options=options,
        original_filename=row.filename,
        input_key=row.storage_key,
        output_key=storage.output_key(row.task_id, outputs.main_stem(fmt, row.filename),
                                      formats.FORMATS[fmt].extension),
        input_size=row.length,
        callback_url=callback,
    )
    # The upload's row goes in the task row's transaction: one upload, one task.
    if not await anyio.to_thread.run_sync(rows.take_for_task, ctx.sessions, row.id, task):
        raise NotFound("upload not found")
    await _schedule(ctx, task.id)
    return task.id


async def _schedule(ctx: AppContext, task_id: str) -> None:
    try:
        await ctx.executor.submit(task_id)
    except Exception as exc:
        log.exception("could not schedule task %s", task_id)
        error = f"the task could not be scheduled: {exc}"
        await anyio.to_thread.run_sync(
            lambda: updates.record_failure(ctx.sessions, task_id, error=error, code="schedule")
        )
        raise Unavailable("the conversion could not be scheduled; try again later") from None


def _delete_objects(ctx: AppContext, task: Task) -> None:
    try:
        ctx.storage.delete(task.input_key)
    except ObjectNotFound:
        pass
    outputs.delete_all(ctx.storage, task.id)  # the main output and any beside it


def _discard_objects(ctx: AppContext, task: Task) -> None:
    """Best effort after a failed insert: the caller's error (a 503) is what matters."""
    try:
        _delete_objects(ctx, task)
    except StorageError as exc:
        log.warning("task %s: could not remove its input after a failed insert: %s", task.id, exc)


async def delete_task(ctx: AppContext, owner: str, task_id: str) -> None:
    """Stop the conversion if it runs, then remove its objects and its row.

    Objects before the row: an outage in between (503) leaves the row, so the same DELETE
    retried later finishes the job; the other order could leave objects nothing points to.
    StorageError and database errors answer 503 (vidconv.api.errors.EXCEPTION_HANDLERS).
    """
    task = await anyio.to_thread.run_sync(tasks.get_owned, ctx.sessions, owner, task_id)
    await ctx.executor.cancel(task.id)
    await anyio.to_thread.run_sync(_delete_objects, ctx, task)
    await anyio.to_thread.run_sync(tasks.delete_row, ctx.sessions, task.id)
