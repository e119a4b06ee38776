"""GET /api/tasks/{id}/events: one task's live progress as Server-Sent Events; and
POST /api/tasks/{id}/events/session, the browser's way in without a token in the URL.

The stream follows the task row (``vidconv.api.watch``), so every replica serves every stream.
sse-starlette writes the events, the heartbeat comments and notices a client that left or a
server that shuts down; what to send is ``vidconv.api.services.progress``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import anyio.to_thread
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidconv.api.deps import get_ctx, require_user
from vidconv.api.errors import unauthorized
from vidconv.api.openapi import ENDED, ERROR, EVENTS, STREAM_COOKIE, UNAVAILABLE, Operation
from vidconv.api.schemas import ProgressEvent, StateEvent
from vidconv.api.security import (
    STREAM_COOKIE_NAME,
    STREAM_TOKEN_SECONDS,
    InvalidToken,
    create_stream_token,
    decode_stream_token,
)
from vidconv.api.services import progress, tasks
from vidconv.api.services.progress import Cursor, Snapshot
from vidconv.api.watch import RowWatch

HEARTBEAT_SECONDS = 15  # a comment line this often keeps proxies from closing an idle stream
SEND_TIMEOUT_SECONDS = 30  # a client that reads nothing for this long is let go
_MODELS = {progress.PROGRESS: ProgressEvent, progress.STATE: StateEvent}


def _caller(request: Request, task_id: str) -> str:
    """The Bearer token's user; without one, the user of this task's stream cookie."""
    if "authorization" in request.headers:
        return require_user(request)
    token = request.cookies.get(STREAM_COOKIE_NAME)
    if not token:
        raise unauthorized()
    try:
        return decode_stream_token(get_ctx(request).settings, token, task_id)
    except InvalidToken:
        raise unauthorized() from None


def _encode(event: progress.Event) -> ServerSentEvent:
    data = _MODELS[event.name](**event.data).model_dump(mode="json")
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), event=event.name,
                           id=event.cursor.id)


async def _stream(watch: RowWatch, first: Snapshot, cursor: Cursor,
                  limit: float) -> AsyncIterator[ServerSentEvent]:
    deadline = time.monotonic() + limit
    snap, told = first, None
    async with watch.follow(first) as follower:
        while True:
            due, cursor = progress.events(cursor, snap)
            for event in due:
                if event.name == progress.PROGRESS:
                    if event.data == told:
                        continue  # a new revision that changed nothing shown (a retry begins)
                    told = event.data
                yield _encode(event)
            if snap.finished:
                return
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    found = await follower.next()
            except TimeoutError:
                yield ServerSentEvent(comment="this stream ends here; reconnect with "
                                              "Last-Event-ID to go on")
                return
            snap = found if found is not None else progress.gone(snap)


async def task_events(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    owner = _caller(request, task_id)
    ctx = get_ctx(request)
    task = await anyio.to_thread.run_sync(tasks.get_owned, ctx.sessions, owner, task_id)
    first = Snapshot.of(task)
    cursor = Cursor.parse(request.headers.get("last-event-id"))
    if cursor is not None and cursor.saw_the_end(first):
        # The client has seen the end: 204 tells an EventSource to stop reconnecting.
        return Response(status_code=204)
    return EventSourceResponse(
        _stream(ctx.watch, first, cursor or Cursor(), ctx.settings.event_stream_seconds),
        ping=HEARTBEAT_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"Cache-Control": "no-store"},
    )


async def events_session(request: Request) -> Response:
    """A stream token for this task, as a cookie only its events URL gets."""
    owner = require_user(request)
    task_id = request.path_params["task_id"]
    ctx = get_ctx(request)
    task = await anyio.to_thread.run_sync(tasks.get_owned, ctx.sessions, owner, task_id)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        STREAM_COOKIE_NAME, create_stream_token(ctx.settings, owner, task.id),
        max_age=STREAM_TOKEN_SECONDS, path=f"/api/tasks/{task.id}/events",
        secure=request.url.scheme == "https", httponly=True, samesite="strict",
    )
    return response


routes = [
    Route("/api/tasks/{task_id}/events", task_events, methods=["GET"]),
    Route("/api/tasks/{task_id}/events/session", events_session, methods=["POST"]),
]

OPERATIONS = [
    Operation("GET", "/api/tasks/{task_id}/events", "Follow a task's progress (Server-Sent "
              "Events)", "taskEvents",
              {200: EVENTS, 204: ENDED, 401: ERROR, 404: ERROR, 503: UNAVAILABLE},
              auth=True, cookie=True,
              headers={"Last-Event-ID": "the id of the last event received: resume after it"}),
    Operation("POST", "/api/tasks/{task_id}/events/session", "A cookie for a browser's "
              "EventSource of this task", "taskEventsSession",
              {204: STREAM_COOKIE, 401: ERROR, 404: ERROR, 503: UNAVAILABLE}, auth=True),
]
