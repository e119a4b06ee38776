"""``vidconv serve``: the API (and, embedded, its workers) under uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from vidconv.api.app import create_app
from vidconv.settings import get_settings


def serve() -> int:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # create_app creates the data dirs and the JWT secret; its lifespan applies migrations
    # and resumes unfinished tasks before the first request is served.
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0
