"""Creating and deleting tasks: input to storage, row, hand-over to the executor."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request

from vidconv import formats, storage
from vidconv.api.context import AppContext
from vidconv.api.errors import (
    RETRY_AFTER_SECONDS,
    ApiError,
    bad_request,
    unauthorized,
    unprocessable,
)
from vidconv.api.fetch import download, is_url
from vidconv.api.services import tasks
from vidconv.api.services.users import user_exists
from vidconv.api.uploads import receive_multipart, safe_filename, store_file
from vidconv.db import updates
from vidconv.db.models import Task, new_id
from vidconv.storage import ObjectNotFound, StorageError

log = logging.getLogger("vidconv.api")


def _options_from_fields(fields: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if fields.get("options"):
        try:
            options = json.loads(fields["options"])
        except ValueError:
            raise unprocessable("options must be a JSON object") from None
        if not isinstance(options, dict):
            raise unprocessable("options must be a JSON object")
    # Each option may also come as its own form field: -F max_height=480
    options.update({k: v for k, v in fields.items() if k not in tasks.RESERVED_FIELDS})
    return options


async def _require_existing_user(ctx: AppContext, owner: str) -> None:
    # Before the body is read: a database outage or a deleted user is answered at once,
    # not after a multi-gigabyte upload has streamed in.
    if not await anyio.to_thread.run_sync(user_exists, ctx.sessions, owner):
        raise unauthorized("the token's user no longer exists")


async def create_from_multipart(ctx: AppContext, owner: str, request: Request) -> str:
    await _require_existing_user(ctx, owner)
    upload = await receive_multipart(request, ctx.upload_dir, ctx.settings.max_upload_bytes)
    try:
        fields = upload.fields
        fmt, options = tasks.validate_format(
            fields.get("conversion_type") or fields.get("newFormat"),
            _options_from_fields(fields),
        )
        if upload.path is None:
            raise bad_request("file is required (a multipart file part named file)")
        if upload.size == 0:
            raise bad_request("the uploaded file is empty")
        return await _create(ctx, owner, fmt, options, upload.filename, upload.path)
    finally:
        upload.discard()


async def create_from_json(ctx: AppContext, owner: str, data: dict[str, Any]) -> str:
    ref = data.get("file")
    if not isinstance(ref, str) or not ref.strip():
        raise unprocessable("file is required: the name of an uploaded file or an http(s) URL")
    ref = ref.strip()
    fmt, options = tasks.validate_format(
        data.get("conversion_type") or data.get("newFormat"), data.get("options") or {}
    )
    await _require_existing_user(ctx, owner)
    if is_url(ref):
        path, name = await download(
            ref, ctx.upload_dir, ctx.settings.max_upload_bytes, ctx.settings.url_inputs
        )
    else:
        path, name = await _copy_previous_upload(ctx, owner, ref)
    try:
        if path.stat().st_size == 0:
            raise bad_request("the input file is empty")
        return await _create(ctx, owner, fmt, options, safe_filename(name), path)
    finally:
        path.unlink(missing_ok=True)


async def _copy_previous_upload(ctx: AppContext, owner: str, ref: str) -> tuple[Path, str]:
    """Never a server path: ``ref`` only ever names one of the caller's own uploads."""
    source = await anyio.to_thread.run_sync(tasks.find_previous_upload, ctx.sessions, owner, ref)
    if source is None:
        raise bad_request(f"no uploaded file of yours is named {ref!r}")
    fd, name = tempfile.mkstemp(prefix="copy-", dir=ctx.upload_dir)
    os.close(fd)  # get_file (re)writes the path itself
    try:
        await anyio.to_thread.run_sync(ctx.storage.get_file, source.input_key, Path(name))
    except ObjectNotFound:
        Path(name).unlink(missing_ok=True)
        raise bad_request(f"the uploaded file {ref!r} is no longer stored") from None
    except BaseException:  # storage down (503): no temp file left behind either
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), source.original_filename or source.input_key.rsplit("/", 1)[-1]


async def _create(
    ctx: AppContext, owner: str, fmt: str, options: dict[str, Any], filename: str, path: Path
) -> str:
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
        output_key=storage.output_key(task_id, filename, formats.FORMATS[fmt].extension),
        input_size=size,
    )
    try:
        await anyio.to_thread.run_sync(tasks.insert_task, ctx.sessions, task)
    except BaseException:
        await anyio.to_thread.run_sync(_discard_objects, ctx, task)
        raise
    try:
        await ctx.executor.submit(task_id)
    except Exception as exc:
        log.exception("could not schedule task %s", task_id)
        error = f"the task could not be scheduled: {exc}"
        await anyio.to_thread.run_sync(
            lambda: updates.record_failure(ctx.sessions, task_id, error=error, code="schedule")
        )
        raise ApiError(503, "the conversion could not be scheduled; try again later",
                       {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    return task_id


def _delete_objects(ctx: AppContext, task: Task) -> None:
    for key in (task.input_key, task.output_key):
        try:
            ctx.storage.delete(key)
        except ObjectNotFound:
            pass


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
    StorageError and database errors answer 503 (errors.EXCEPTION_HANDLERS).
    """
    task = await anyio.to_thread.run_sync(tasks.get_owned, ctx.sessions, owner, task_id)
    await ctx.executor.cancel(task.id)
    await anyio.to_thread.run_sync(_delete_objects, ctx, task)
    await anyio.to_thread.run_sync(tasks.delete_row, ctx.sessions, task.id)
