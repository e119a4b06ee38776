"""Each user's signing secret: made, shown once, kept encrypted, rotated.

The server must sign with the secret, so a hash will not do; it is kept encrypted with Fernet
(AES-128-CBC and HMAC-SHA256, from ``cryptography``) under a key the database does not hold:
``VIDCONV_WEBHOOK_KEY`` (comma-separated: the first encrypts, every one decrypts, so a new key
goes in front and the old one leaves once every secret has been rotated), else a key derived
from the JWT secret. A database dump alone therefore gives no secret. Each configured value is
stretched to a Fernet key with HKDF-SHA256, so any string will do.

A rotation answers the new secret once; the previous one keeps signing beside it for
``PREVIOUS_VALID`` so receivers can switch over without losing an event.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session, sessionmaker

from vidconv.api.webhooks.signing import new_secret
from vidconv.db.models import User, aware, utcnow
from vidconv.settings import Settings

PREVIOUS_VALID = timedelta(hours=24)
_INFO = b"vidconv webhook signing secrets"


def _fernet(material: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Encrypts secrets for the database and decrypts them for signing."""

    def __init__(self, settings: Settings) -> None:
        keys = [k.strip() for k in settings.webhook_key.split(",") if k.strip()]
        if not keys:
            if not settings.jwt_secret:
                raise ValueError("no webhook key: set VIDCONV_WEBHOOK_KEY or VIDCONV_JWT_SECRET")
            keys = [settings.jwt_secret]
        self._fernet = MultiFernet([_fernet(k) for k in keys])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str | None:
        """The secret, or None when no configured key opens it (the key was replaced)."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None


@dataclass(frozen=True)
class Rotated:
    secret: str
    created_at: datetime
    previous_valid_until: datetime | None


def rotate(sessions: sessionmaker[Session], box: SecretBox, user_id: str) -> Rotated | None:
    """A new secret for the user (the current one stays valid a while); None: no such user."""
    secret, now = new_secret(), utcnow()
    with sessions.begin() as session:
        user = session.get(User, user_id, with_for_update=True)
        if user is None:
            return None
        previous_until = now + PREVIOUS_VALID if user.webhook_secret else None
        user.webhook_secret_previous = user.webhook_secret
        user.webhook_secret_previous_until = previous_until
        user.webhook_secret = box.seal(secret)
        user.webhook_secret_created_at = now
    return Rotated(secret, now, previous_until)


def signing_keys(sessions: sessionmaker[Session], box: SecretBox, user_id: str) -> list[str]:
    """The secrets a delivery for the user is signed with now: the current one first."""
    with sessions() as session:
        user = session.get(User, user_id)
        if user is None or not user.webhook_secret:
            return []
        sealed = [user.webhook_secret]
        until = user.webhook_secret_previous_until
        if user.webhook_secret_previous and until is not None and aware(until) > utcnow():
            sealed.append(user.webhook_secret_previous)
    return [s for s in map(box.open, sealed) if s is not None]
