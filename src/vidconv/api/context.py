"""What every request handler needs, built once per app: settings, database, storage, executor,
and the webhooks' secret box and dispatcher."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vidconv.api.direct import Presigner, make_presigner
from vidconv.api.executors.base import Executor, make_executor
from vidconv.api.metrics import ApiMetrics
from vidconv.api.security import load_or_create_secret
from vidconv.api.throttle import LoginThrottle
from vidconv.api.watch import RowWatch
from vidconv.api.webhooks.dispatcher import Dispatcher
from vidconv.api.webhooks.secretbox import SecretBox
from vidconv.db.session import make_engine, make_sessionmaker
from vidconv.settings import Settings
from vidconv.storage import Storage, make_storage

log = logging.getLogger("vidconv.api")


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage
    executor: Executor
    box: SecretBox  # the users' webhook signing secrets, encrypted in the database
    dispatcher: Dispatcher  # delivers the webhook outbox
    metrics: ApiMetrics
    watch: RowWatch  # the event streams' poll of the task rows
    presigner: Presigner | None = None  # direct transfers: S3 URLs for clients (vidconv.api.direct)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    openapi: dict[str, Any] | None = None  # the generated document, built on first request

    @property
    def upload_dir(self) -> Path:
        """Where uploads land before they become objects (same disk as local objects)."""
        return self.settings.data_dir / "tmp"


def prepare_settings(settings: Settings) -> Settings:
    """Create the data dirs and fill in a JWT secret when none is configured."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "tmp").mkdir(exist_ok=True)
    if settings.storage == "local":
        settings.objects_dir.mkdir(parents=True, exist_ok=True)
    if not settings.jwt_secret:
        if settings.executor != "local":
            log.warning("VIDCONV_JWT_SECRET is unset: API replicas will not accept each other's "
                        "tokens; set it from a Secret")
        settings = replace(settings, jwt_secret=load_or_create_secret(settings.data_dir))
    return settings


def build_context(settings: Settings) -> AppContext:
    settings = prepare_settings(settings)
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_sessionmaker(engine)
    storage = make_storage(settings)
    metrics = ApiMetrics(sessions)
    executor = make_executor(settings, sessions, storage, metrics.registry)
    box = SecretBox(settings)
    return AppContext(settings, engine, sessions, storage, executor, box,
                      Dispatcher(settings, sessions, box, storage, metrics.registry), metrics,
                      RowWatch(sessions), make_presigner(settings))
