"""Liveness and readiness."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import anyio
import anyio.to_thread
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidconv.api.context import AppContext
from vidconv.api.deps import get_ctx, render
from vidconv.api.openapi import Operation
from vidconv.api.schemas import Health, NotReady, Ready
from vidconv.storage import StorageError


async def healthz(_request: Request) -> Response:
    return render(Health())


def _check_database(ctx: AppContext) -> None:
    with ctx.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def readyz(request: Request) -> Response:
    """200 when the database and the storage answer, else 503 naming what failed and why."""
    ctx = get_ctx(request)
    checks: dict[str, str] = {}
    probes: dict[str, Callable[[], None]] = {
        "database": partial(_check_database, ctx), "storage": ctx.storage.check}
    for name, probe in probes.items():
        try:
            with anyio.fail_after(5):
                await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
            checks[name] = "ok"
        except StorageError as exc:  # its message says why: endpoint down, keys refused, ...
            checks[name] = f"unavailable: {exc}"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks[name] = f"unavailable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return render(Ready(checks=checks))
    failed = "; ".join(f"{k} {v}" for k, v in checks.items() if v != "ok")
    return render(NotReady(message=f"not ready: {failed}", checks=checks), 503)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]

OPERATIONS = [
    Operation("GET", "/healthz", "Alive", "healthz", {200: Health}),
    Operation("GET", "/readyz", "Database and storage reachable", "readyz",
              {200: Ready, 503: NotReady}),
]
