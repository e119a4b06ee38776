"""users.username_key: user names unique as NFKC case-folded

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key(name: str) -> str:  # as vidconv.db.models.name_key at the time of this migration
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username_key", sa.String(255), nullable=True))
    users = sa.table("users", sa.column("id", sa.String), sa.column("username", sa.String),
                     sa.column("username_key", sa.String))
    conn = op.get_bind()
    for user_id, name in conn.execute(sa.select(users.c.id, users.c.username)).all():
        conn.execute(users.update().where(users.c.id == user_id)
                     .values(username_key=_key(name)))
    # Accounts that collide once normalised (made before this rule) keep working: the second
    # one's key gets its id appended, so it can still log in by email.
    seen: set[str] = set()
    rows = conn.execute(sa.select(users.c.id, users.c.username_key).order_by(users.c.id)).all()
    for user_id, key in rows:
        if key in seen:
            conn.execute(users.update().where(users.c.id == user_id)
                         .values(username_key=f"{key}#{user_id}"))
        seen.add(key)
    with op.batch_alter_table("users") as batch:
        batch.alter_column("username_key", existing_type=sa.String(255), nullable=False)
        batch.create_index("ix_users_username_key", ["username_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_username_key")
        batch.drop_column("username_key")
