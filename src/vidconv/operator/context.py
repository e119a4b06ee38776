"""What the handlers share, built once at start-up and handed to them through kopf's memo."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.orm import Session, sessionmaker

from vidconv.kube import api_client
from vidconv.operator.client import Cluster
from vidconv.settings import Settings


class Context:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster = Cluster(api_client(settings))

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        # Lazy: the engine connects on first use, so a database outage at start-up only
        # delays the mirror (with_db_retry), it does not stop the operator.
        from vidconv.db.session import make_engine, make_sessionmaker

        return make_sessionmaker(make_engine(self.settings.sqlalchemy_url))
