"""/api/tasks and /api/download: thin handlers over services.tasks and services.submit.

Each handler parses (with the models of vidconv.api.schemas), calls a service with the parsed
values, and renders the answer from a model. One Route per path, so that a 405 names every
method the path has in its Allow header.
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidconv import logs
from vidconv.api.archive import zip_response
from vidconv.api.deps import get_ctx, query, read_json_object, render, require_user
from vidconv.api.direct import redirect_download
from vidconv.api.downloads import object_response
from vidconv.api.errors import ApiError, unprocessable
from vidconv.api.openapi import BINARY, EMPTY, ERROR, REDIRECT, UNAVAILABLE, Operation
from vidconv.api.schemas import (
    DownloadQuery,
    ListQuery,
    OutputFileOut,
    TaskCreated,
    TaskDetail,
    TaskForm,
    TaskFromReference,
    TaskList,
    TaskSummary,
    decode,
    parse_option_text,
)
from vidconv.api.services import files, submit, tasks
from vidconv.api.uploads import FILE_FIELDS, ensure_multipart_or_json, receive_multipart
from vidconv.db.models import TaskState

MAX_LIST = 1000
FORM_FIELDS = {"conversion_type", "newFormat", "options", "callback_url", *FILE_FIELDS}


async def list_tasks(request: Request) -> Response:
    owner = require_user(request)
    params = query(request, ListQuery)
    # A seed client asking for more than the cap gets the cap, not an error.
    limit = min(params.max, MAX_LIST)
    ctx = get_ctx(request)
    rows = await anyio.to_thread.run_sync(
        tasks.list_tasks, ctx.sessions, owner, limit, params.order == 1)
    return render(TaskList(tasks=[TaskSummary(**row) for row in rows]))


def _form(fields: dict[str, str]) -> TaskForm:
    """The multipart text fields as a TaskForm: options as fields or as one JSON field."""
    options: dict[str, Any] = {}
    given = {k: v for k, v in fields.items() if k not in FORM_FIELDS}
    if fields.get("options"):
        if given:
            raise unprocessable("give the options either as fields or as one JSON object in "
                                "options, not both")
        try:
            options = json.loads(fields["options"])
        except ValueError:
            raise unprocessable("options must be a JSON object") from None
        if not isinstance(options, dict):
            raise unprocessable("options must be a JSON object")
    else:
        options = {k: parse_option_text(k, v) for k, v in given.items()}
    data: dict[str, Any] = {k: fields[k] for k in ("conversion_type", "newFormat")
                            if fields.get(k)}
    if "callback_url" in fields:  # given empty is refused, as in JSON
        data["callback_url"] = fields["callback_url"]
    return decode(TaskForm, {**data, "options": options})


async def create_task(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    kind = ensure_multipart_or_json(request.headers.get("content-type", ""))
    if kind == "multipart":
        # The caller's account first: a deleted user or a database outage is answered at once,
        # not after a multi-gigabyte upload has streamed in.
        await submit.require_account(ctx, owner)
        upload = await receive_multipart(request, ctx.upload_dir, ctx.settings.max_upload_bytes)
        ctx.metrics.received(upload.size)
        try:
            form = _form(upload.fields)
            fmt, options = form.format(), form.checked_options()
            if upload.path is None:
                raise ApiError(400, "file is required (a multipart file part named file)")
            if upload.size == 0:
                raise ApiError(400, "the uploaded file is empty")
            task_id = await submit.create_from_file(
                ctx, owner, fmt, options, upload.filename, upload.path, form.callback_url)
        finally:
            upload.discard()
    else:
        ref = decode(TaskFromReference, await read_json_object(request))
        if ref.upload is not None:
            task_id = await submit.create_from_upload(
                ctx, owner, ref.upload, ref.format(), ref.checked_options(), ref.callback_url)
        else:
            assert ref.file is not None
            task_id = await submit.create_from_reference(
                ctx, owner, ref.file, ref.format(), ref.checked_options(), ref.callback_url)
    logs.bind_task(task_id)
    return render(TaskCreated(task_id=task_id), 201)


async def tasks_collection(request: Request) -> Response:
    return await (create_task if request.method == "POST" else list_tasks)(request)


async def get_task(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    task_id = request.path_params["task_id"]
    task = await anyio.to_thread.run_sync(tasks.get_owned, ctx.sessions, owner, task_id)
    if task.status != TaskState.SUCCESS.value:
        return render(TaskDetail(**tasks.detail(task)))
    listed = await anyio.to_thread.run_sync(files.list_files, ctx.storage, task)
    links = files.links(ctx.settings, task)
    found = [OutputFileOut(name=f.name, size=f.size, role=f.role,  # type: ignore[arg-type]
                           type=f.type, url=links.url(f.name)) for f in listed]
    return render(TaskDetail(**tasks.detail(task), files=found,
                             url=next((f.url for f in found if f.role == "main"), None),
                             urls_expire_at=links.expires_at))


async def delete_task(request: Request) -> Response:
    owner = require_user(request)
    await submit.delete_task(get_ctx(request), owner, request.path_params["task_id"])
    return Response(status_code=204)


async def task_item(request: Request) -> Response:
    logs.bind_task(request.path_params["task_id"])
    return await (delete_task if request.method == "DELETE" else get_task)(request)


async def download(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    params = query(request, DownloadQuery)
    logs.bind_task(params.task_id)
    task = await anyio.to_thread.run_sync(tasks.get_owned, ctx.sessions, owner, params.task_id)
    if task.status != TaskState.SUCCESS.value:
        raise ApiError(409, f"the conversion is not finished (state {task.status})")
    listed = await anyio.to_thread.run_sync(files.list_files, ctx.storage, task)
    if params.file or not files.several(task):
        one = files.pick(listed, params.file)
        if (ctx.presigner is not None and one.role == "main" and not files.several(task)
                and request.method == "GET"):
            # Direct transfers: S3 serves the converted file itself (a HEAD is answered here:
            # the URL is signed for a GET).
            return await redirect_download(ctx.presigner, ctx.storage, task.output_key,
                                           one.name, task.conversion_type)
        return await object_response(request, ctx.storage, files.key(task, one), one.name,
                                     one.type)
    stem = (task.original_filename or tasks.download_name(task)).rsplit(".", 1)[0] or "outputs"
    return zip_response(ctx.storage, task.id, listed, f"{stem}.zip")


routes = [
    Route("/api/tasks", tasks_collection, methods=["GET", "POST"]),
    Route("/api/tasks/{task_id}", task_item, methods=["GET", "DELETE"]),
    Route("/api/download", download, methods=["GET"]),
]

OPERATIONS = [
    Operation("GET", "/api/tasks", "List your tasks", "listTasks",
              {200: TaskList, 401: ERROR, 422: ERROR, 503: UNAVAILABLE},
              query=ListQuery, auth=True),
    Operation("POST", "/api/tasks", "Start a conversion", "createTask",
              {201: TaskCreated, 400: ERROR, 401: ERROR, 404: ERROR, 409: ERROR, 413: ERROR,
               415: ERROR, 422: ERROR, 503: UNAVAILABLE},
              body={"multipart/form-data": "TaskFromUpload",
                    "application/json": TaskFromReference}, auth=True),
    Operation("GET", "/api/tasks/{task_id}", "A task's state", "getTask",
              {200: TaskDetail, 401: ERROR, 404: ERROR, 503: UNAVAILABLE}, auth=True),
    Operation("DELETE", "/api/tasks/{task_id}", "Cancel and delete a task", "deleteTask",
              {204: EMPTY, 401: ERROR, 404: ERROR, 503: UNAVAILABLE}, auth=True),
    Operation("GET", "/api/download", "Download the converted file", "download",
              {200: BINARY, 206: BINARY, 307: REDIRECT, 401: ERROR, 404: ERROR, 409: ERROR,
               416: ERROR, 422: ERROR, 503: UNAVAILABLE},
              query=DownloadQuery, auth=True,
              headers={"Range": "one range, e.g. bytes=0-1023"}),
]
