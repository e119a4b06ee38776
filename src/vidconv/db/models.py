"""vidconv's tables: users, their conversion tasks, the webhook outbox with its log, and
uploads on their way in."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def name_key(username: str) -> str:
    """The form in which user names are unique: NFKC, case-folded, NFKC again."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """A stored time with its zone: SQLite hands back naive datetimes; we store UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC."""
    return None if value is None else aware(value).isoformat()


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
    # Webhooks: the default callback of new tasks, and the signing secret (encrypted: see
    # vidconv.api.webhooks.secrets). After a rotation the previous secret signs too for a while.
    callback_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_secret_created_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True)
    webhook_secret_previous: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_secret_previous_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True)


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
    # As the transcoder last reported them while converting (frames/s, x real time).
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    speed: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Counts the writes of vidconv.db.updates: the event stream's ids, and how a poll of the
    # row tells that something changed.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
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
    callback_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    DELIVERED = "delivered"  # a 2xx came back
    FAILED = "failed"  # refused by the receiver (4xx), by our address rules, or retried out


class WebhookEvent(Base):
    """One event per end state of a task with a callback: the outbox row and its delivery state.

    Written in the transaction of the end state (``vidconv.db.updates``); no foreign key to the
    task, so a deleted task's REVOKED event is still sent.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("task_id", "state", name="uq_webhook_events_task_state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    task_id: Mapped[str] = mapped_column(String(32), index=True)
    owner_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[str] = mapped_column(Text)  # the exact body every attempt sends
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True)
    # Retries go on for settings.webhook_retry_hours from here: the event, or the last redeliver.
    retry_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The dispatcher that is sending it now, and until when the others leave it alone.
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookAttempt(Base):
    """One try at sending an event: what came back, how long it took, or what went wrong."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Upload(Base):
    """A tus upload on its way to becoming a task's input (vidconv.api.tus).

    Every API replica reads and writes the same row, so any of them can take the next chunk:
    ``upload_offset`` is what storage holds for sure, ``lock_token``/``locked_until`` the lease
    of the one request writing to it. ``task_id`` is chosen at creation, so the finished object
    already lies where that task's input belongs (``storage_key``) and is never copied again.
    """

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[str] = mapped_column(String(32), unique=True, index=True, default=new_id)
    length: Mapped[int] = mapped_column(BigInteger)
    upload_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # Upload-Metadata exactly as the client sent it (HEAD answers it back).
    metadata_header: Mapped[str] = mapped_column(Text, default="")
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(512))
    # S3: the multipart upload, its parts [{"n", "etag", "size"}] and the short tail kept
    # aside until a part is full [{"offset", "size"}] (vidconv.api.tus.sinks).
    multipart_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    part_size: Mapped[int] = mapped_column(BigInteger, default=0)
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The client sends the parts to S3 itself through presigned URLs (direct transfers).
    direct: Mapped[bool] = mapped_column(Boolean, default=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lock_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
