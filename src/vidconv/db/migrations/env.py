"""Alembic environment: runs the migrations against the URL vidconv hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool, text

from vidconv.db.models import Base

MIGRATION_LOCK = 0x76696463  # 'vidc'

config = context.config
connectable = engine_from_config(
    config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # API replicas start together: one migrates, the others wait here, then find
            # the schema at head. The lock ends with the migration's transaction.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
