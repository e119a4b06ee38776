"""The two tables vidconv keeps: users and their conversion tasks."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def name_key(username: str) -> str:
    """The form in which user names are unique: NFKC, case-folded, NFKC again."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def utcnow() -> datetime:
    return datetime.now(UTC)


class TaskState(StrEnum):
    """The seed's Celery states; the API answers them verbatim."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(150), unique=True, index=True)
    # What makes two names one account: NFKC, case-folded (services.users).
    username_key: Mapped[str] = mapped_column(
        String(255), unique=True, index=True,
        default=lambda ctx: name_key(ctx.get_current_parameters()["username"]))
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    conversion_type: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=TaskState.PENDING.value, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    original_filename: Mapped[str] = mapped_column(String(255), default="")
    input_key: Mapped[str] = mapped_column(String(512))
    output_key: Mapped[str] = mapped_column(String(512))
    input_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    input_duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    output_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    output_duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # For operators: what the tools said (ffmpeg's last lines); users read ``error``.
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
