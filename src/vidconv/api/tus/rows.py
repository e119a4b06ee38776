"""The ``uploads`` table: owner-scoped reads, and the lease that lets one request write at a time.

Two PATCHes of one upload may reach two replicas at once (a client that retried before its
first request's server noticed the cut). Whoever writes must hold the lease: a conditional
UPDATE that takes it only when nobody holds it (or the holder's lease has run out), and every
later write of the state is conditional on still holding it. Plain UPDATE ... WHERE, the same
on SQLite and PostgreSQL; no row lock is held across the seconds a chunk takes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from vidconv.api.services.errors import Conflict, NotFound
from vidconv.db.models import Task, Upload, utcnow

# A writer renews its lease at every checkpoint (about once a second while bytes flow); one
# that stalls this long loses it to the next request.
LEASE = timedelta(seconds=30)


@dataclass
class State:
    """What storage durably holds of an upload: the offset, and S3's parts and tail."""

    offset: int
    parts: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    # Objects this state no longer needs (S3 tails joined into a part): removed once it is saved.
    garbage: list[str] = field(default_factory=list)


def aware(moment: datetime) -> datetime:
    """In UTC (SQLite hands back naive datetimes, PostgreSQL its session's zone)."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _live(owner: str, upload_id: str, now: datetime) -> Any:
    return and_(Upload.id == upload_id, Upload.owner_id == owner, Upload.expires_at > now)


def get_owned(sessions: sessionmaker[Session], owner: str, upload_id: str) -> Upload:
    """The caller's upload; someone else's, an expired or a missing one is NotFound alike."""
    with sessions() as session:
        row = session.scalars(select(Upload).where(_live(owner, upload_id, utcnow()))).first()
    if row is None:
        raise NotFound("upload not found")
    return row


def insert(sessions: sessionmaker[Session], row: Upload) -> None:
    with sessions.begin() as session:
        session.add(row)


def open_uploads(sessions: sessionmaker[Session], owner: str) -> list[datetime]:
    """When each of the owner's live uploads expires, soonest first."""
    with sessions() as session:
        query = (select(Upload.expires_at)
                 .where(Upload.owner_id == owner, Upload.expires_at > utcnow())
                 .order_by(Upload.expires_at))
        return [aware(moment) for moment in session.scalars(query)]


def try_acquire(sessions: sessionmaker[Session], owner: str, upload_id: str) -> str | None:
    """Take the upload's lease: its token, or None while another request holds it.

    NotFound for a missing, expired or someone else's upload.
    """
    token = uuid.uuid4().hex
    now = utcnow()
    with sessions.begin() as session:
        taken = session.execute(
            update(Upload)
            .where(_live(owner, upload_id, now),
                   or_(Upload.lock_token.is_(None), Upload.locked_until < now))
            .values(lock_token=token, locked_until=now + LEASE)
        ).rowcount  # type: ignore[attr-defined]
    if taken:
        return token
    get_owned(sessions, owner, upload_id)  # NotFound if that is why
    return None


def read_locked(sessions: sessionmaker[Session], upload_id: str, token: str) -> Upload:
    with sessions() as session:
        row = session.scalars(
            select(Upload).where(Upload.id == upload_id, Upload.lock_token == token)).first()
    if row is None:
        raise Conflict("this request lost its hold on the upload; ask for its offset and retry")
    return row


def save(sessions: sessionmaker[Session], upload_id: str, token: str, state: State,
         expiry: timedelta, *, release: bool = False, completed: bool = False) -> datetime:
    """Record what storage holds (only while holding the lease); the new expiry."""
    now = utcnow()
    expires = now + expiry
    values: dict[str, Any] = {
        "upload_offset": state.offset, "parts": state.parts, "segments": state.segments,
        "expires_at": expires, "locked_until": None if release else now + LEASE}
    if release:
        values["lock_token"] = None
    if completed:
        values["completed_at"] = now
    with sessions.begin() as session:
        saved = session.execute(
            update(Upload).where(Upload.id == upload_id, Upload.lock_token == token)
            .values(**values)).rowcount  # type: ignore[attr-defined]
    if not saved:
        raise Conflict("this request lost its hold on the upload; ask for its offset and retry")
    return expires


def touch(sessions: sessionmaker[Session], upload_id: str, expiry: timedelta) -> None:
    """Activity without bytes through us (a direct upload's new URLs): it expires later."""
    with sessions.begin() as session:
        session.execute(update(Upload).where(Upload.id == upload_id)
                        .values(expires_at=utcnow() + expiry))


def release(sessions: sessionmaker[Session], upload_id: str, token: str) -> None:
    with sessions.begin() as session:
        session.execute(update(Upload).where(Upload.id == upload_id, Upload.lock_token == token)
                        .values(lock_token=None, locked_until=None))


def take_for_task(sessions: sessionmaker[Session], upload_id: str, task: Task) -> bool:
    """Insert ``task`` and remove its upload's row in one transaction; False if the row was
    gone (another request made the task first)."""
    with sessions.begin() as session:
        gone = session.execute(
            delete(Upload).where(Upload.id == upload_id, Upload.completed_at.is_not(None))
        ).rowcount  # type: ignore[attr-defined]
        if not gone:
            return False
        session.add(task)
    return True


def remove(sessions: sessionmaker[Session], upload_id: str, *, only_expired: bool) -> bool:
    """Delete the row (an expired one only while still expired and nobody writes)."""
    now = utcnow()
    query = delete(Upload).where(Upload.id == upload_id)
    if only_expired:
        query = query.where(Upload.expires_at <= now,
                            or_(Upload.lock_token.is_(None), Upload.locked_until < now))
    with sessions.begin() as session:
        return bool(session.execute(query).rowcount)  # type: ignore[attr-defined]


def expired(sessions: sessionmaker[Session], limit: int = 100) -> list[Upload]:
    now = utcnow()
    with sessions() as session:
        return list(session.scalars(
            select(Upload).where(Upload.expires_at <= now,
                                 or_(Upload.lock_token.is_(None), Upload.locked_until < now))
            .order_by(Upload.expires_at).limit(limit)))


def all_ids(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return set(session.scalars(select(Upload.id)))
