"""/api/tasks and /api/download: thin handlers over services.tasks and services.submit."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vidconv.api.deps import get_ctx, query_int, read_json_object, require_user
from vidconv.api.downloads import object_response
from vidconv.api.errors import ApiError, unprocessable
from vidconv.api.services import submit, tasks
from vidconv.api.uploads import ensure_multipart_or_json
from vidconv.db.models import TaskState

MAX_LIST = 1000


async def list_tasks(request: Request) -> Response:
    owner = require_user(request)
    # A seed client asking for more than the cap gets the cap, not an error.
    limit = min(query_int(request, "max", MAX_LIST, 1, 2**31), MAX_LIST)
    order = query_int(request, "order", 0, 0, 1)
    ctx = get_ctx(request)
    rows = await anyio.to_thread.run_sync(tasks.list_tasks, ctx.sessions, owner, limit, order == 1)
    return JSONResponse({"tasks": rows})


async def create_task(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    kind = ensure_multipart_or_json(request.headers.get("content-type", ""))
    if kind == "multipart":
        task_id = await submit.create_from_multipart(ctx, owner, request)
    else:
        task_id = await submit.create_from_json(ctx, owner, await read_json_object(request))
    return JSONResponse({"message": "Conversion started", "task_id": task_id}, 201)


async def get_task(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    task_id = request.path_params["task_id"]
    task = await anyio.to_thread.run_sync(tasks.get_owned, ctx.sessions, owner, task_id)
    return JSONResponse(tasks.detail(task))


async def delete_task(request: Request) -> Response:
    owner = require_user(request)
    await submit.delete_task(get_ctx(request), owner, request.path_params["task_id"])
    return Response(status_code=204)


async def download(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    task_id = request.query_params.get("task_id", "")
    if not task_id:
        raise unprocessable("task_id is required")
    task = await anyio.to_thread.run_sync(tasks.get_owned, ctx.sessions, owner, task_id)
    if task.status != TaskState.SUCCESS.value:
        raise ApiError(409, f"the conversion is not finished (state {task.status})")
    return await object_response(
        request, ctx.storage, task.output_key, tasks.download_name(task), task.conversion_type
    )


routes = [
    Route("/api/tasks", list_tasks, methods=["GET"]),
    Route("/api/tasks", create_task, methods=["POST"]),
    Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/api/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/api/download", download, methods=["GET"]),
]
