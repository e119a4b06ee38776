"""The Starlette application, assembled in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware

from vidconv.api.context import AppContext, build_context
from vidconv.api.errors import EXCEPTION_HANDLERS
from vidconv.api.headers import SecurityHeaders
from vidconv.api.metrics import HttpMetrics
from vidconv.api.routes import (
    auth,
    docs,
    events,
    files,
    formats,
    health,
    metrics,
    page,
    tasks,
    uploads,
    webhooks,
)
from vidconv.api.tus import expiry
from vidconv.db.session import upgrade
from vidconv.metrics import serve as serve_metrics
from vidconv.settings import Settings, get_settings
from vidconv.storage import StorageError

log = logging.getLogger("vidconv.api")


def _lifespan(ctx: AppContext):  # type: ignore[no-untyped-def]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Migrations at every start: idempotent, and the same ones on SQLite and PostgreSQL.
        await anyio.to_thread.run_sync(upgrade, ctx.settings.sqlalchemy_url)
        ensure_bucket = getattr(ctx.storage, "ensure_bucket", None)
        if ensure_bucket is not None:
            try:
                await anyio.to_thread.run_sync(ensure_bucket)
            except StorageError as exc:  # /readyz reports it; the app still starts
                log.warning("storage not ready: %s", exc)
        await ctx.executor.start()
        # Every API process delivers webhooks: the outbox's leases share the work out.
        await ctx.dispatcher.start()
        sweeper = asyncio.create_task(expiry.sweep_forever(ctx), name="vidconv-upload-expiry")
        listener = (serve_metrics(ctx.settings.metrics_address, ctx.metrics.registry,
                                  "VIDCONV_METRICS_ADDRESS")
                    if ctx.settings.metrics_address else None)
        try:
            yield
        finally:
            if listener is not None:
                server, thread = listener
                server.shutdown()
                server.server_close()
                thread.join()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await ctx.watch.close()
            await ctx.dispatcher.stop()
            await ctx.executor.stop()
            ctx.engine.dispose()

    return lifespan


def create_app(settings: Settings | None = None) -> Starlette:
    ctx = build_context(settings or get_settings())
    # /metrics on the API's port unless it has a listener of its own.
    metric_routes = [] if ctx.settings.metrics_address else metrics.routes
    app = Starlette(
        routes=[*auth.routes, *tasks.routes, *files.routes, *events.routes, *formats.routes,
                *uploads.routes, *webhooks.routes, *health.routes, *metric_routes,
                *docs.routes, *page.routes],
        # Outermost first: every answer gets the security headers, metrics' own included.
        middleware=[Middleware(SecurityHeaders, settings=ctx.settings),
                    Middleware(HttpMetrics, metrics=ctx.metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=_lifespan(ctx),
    )
    app.state.ctx = ctx
    return app
