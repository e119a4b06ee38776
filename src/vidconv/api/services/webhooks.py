"""Webhooks as the owner sees them: account defaults, the signing secret, a task's deliveries."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from vidconv.api.services.errors import Conflict, Unauthenticated
from vidconv.api.services.tasks import get_owned
from vidconv.api.webhooks import secretbox
from vidconv.db import outbox
from vidconv.db.models import TaskState, User, iso

NO_SECRET = ("create a signing secret first (POST /api/account/webhook/secret): every event is "
             "signed with it")


def _user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Unauthenticated("the token's user no longer exists")
    return user


def _account(user: User) -> dict[str, Any]:
    return {"callback_url": user.callback_url, "secret_created_at": iso(
        user.webhook_secret_created_at), "previous_secret_valid_until": iso(
        user.webhook_secret_previous_until)}


def account(sessions: sessionmaker[Session], user_id: str) -> dict[str, Any]:
    with sessions() as session:
        return _account(_user(session, user_id))


def set_default(
    sessions: sessionmaker[Session], user_id: str, callback_url: str | None
) -> dict[str, Any]:
    """The callback of the user's new tasks that give none; Conflict without a secret."""
    with sessions.begin() as session:
        user = _user(session, user_id)
        if callback_url is not None and not user.webhook_secret:
            raise Conflict(NO_SECRET)
        user.callback_url = callback_url
        return _account(user)


def rotate_secret(
    sessions: sessionmaker[Session], box: secretbox.SecretBox, user_id: str
) -> dict[str, Any]:
    rotated = secretbox.rotate(sessions, box, user_id)
    if rotated is None:
        raise Unauthenticated("the token's user no longer exists")
    return {"secret": rotated.secret, "created_at": iso(rotated.created_at),
            "previous_secret_valid_until": iso(rotated.previous_valid_until)}


def callback_for(
    sessions: sessionmaker[Session], user_id: str, given: str | None
) -> str | None:
    """A new task's callback: the one given, else the account's default; Conflict without a
    signing secret."""
    with sessions() as session:
        user = _user(session, user_id)
        url = given or user.callback_url
        if url and not user.webhook_secret:
            raise Conflict(NO_SECRET)
        return url


def _delivery(d: outbox.Delivery) -> dict[str, Any]:
    e = d.event
    return {
        "event_id": e.id, "type": outbox.EVENT_TYPES[TaskState(e.state)], "state": e.state,
        "url": e.url, "status": e.status, "created_at": iso(e.created_at),
        "next_attempt_at": iso(e.next_attempt_at) if e.status == "pending" else None,
        "delivered_at": iso(e.delivered_at),
        "attempts": [{"attempted_at": iso(a.attempted_at), "status_code": a.status_code,
                      "latency_ms": a.latency_ms, "error": a.error} for a in d.attempts],
    }


def task_webhook(sessions: sessionmaker[Session], owner: str, task_id: str) -> dict[str, Any]:
    """The task's callback and every delivery attempt (owner rules as every task route)."""
    task = get_owned(sessions, owner, task_id)
    return {"task_id": task.id, "callback_url": task.callback_url,
            "deliveries": [_delivery(d) for d in outbox.deliveries(sessions, task.id)]}


def redeliver(sessions: sessionmaker[Session], owner: str, task_id: str) -> dict[str, Any]:
    """Send the task's event again, now; Conflict while it has none to send."""
    task = get_owned(sessions, owner, task_id)
    if not task.callback_url:
        raise Conflict("the task has no callback_url")
    if not TaskState(task.status).finished:
        raise Conflict(f"the task has not ended (state {task.status}); its event is sent when "
                       "it does")
    event = outbox.redeliver(sessions, task.id)
    if event is None:
        raise Conflict("the task's event is no longer kept")
    return next(_delivery(d) for d in outbox.deliveries(sessions, task.id)
                if d.event.id == event.id)
