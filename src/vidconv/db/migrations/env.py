"""Alembic environment: runs the migrations against the URL vidconv hands it."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import engine_from_config, pool, text

from vidconv.db.models import Base

MIGRATION_LOCK = 0x76696463  # 'vidc'

log = logging.getLogger("vidconv.db")


def _applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    # What a start logs about migrations (alembic's own INFO lines are off): only what ran.
    doc = getattr(step.up_revision, "doc", None)  # a Script's message; a bare Revision has none
    log.info("database migrated to revision %s%s", step.up_revision_id, f", {doc}" if doc else "")


config = context.config
connectable = engine_from_config(
    config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        on_version_apply=_applied,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # API replicas start together: one migrates, the others wait here, then find
            # the schema at head. The lock ends with the migration's transaction.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
