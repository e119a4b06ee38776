"""``vidconv serve``: the API (and, embedded, its workers) under uvicorn."""

from __future__ import annotations

import uvicorn

from vidconv import logs
from vidconv.api.app import create_app
from vidconv.settings import get_settings


def serve() -> int:
    settings = get_settings()
    logs.configure(settings)
    # create_app creates the data dirs and the JWT secret; its lifespan applies migrations
    # and resumes unfinished tasks before the first request is served.
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # JSON: uvicorn's records go through our handler like every other (its own config
        # would print them as text).
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0
