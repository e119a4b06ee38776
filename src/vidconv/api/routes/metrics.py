"""/metrics: the API's Prometheus metrics in the text exposition format."""

from __future__ import annotations

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidconv.api.deps import get_ctx
from vidconv.api.openapi import TEXT, Operation


async def metrics(request: Request) -> Response:
    registry = get_ctx(request).metrics.registry
    # Off the event loop: collecting reads the tasks from the database.
    body = await anyio.to_thread.run_sync(generate_latest, registry)
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


routes = [Route("/metrics", metrics, methods=["GET"])]

OPERATIONS = [
    Operation("GET", "/metrics", "Prometheus metrics (text exposition format)", "metrics",
              {200: TEXT}),
]
