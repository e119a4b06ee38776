"""Sign-up and log-in: uniqueness of normalised names, password checks, throttling, tokens.

User names are compared as their NFKC case-folded form (``name_key``): ``ａｄｍｉｎ``, ``Admin``
and ``admin`` are one account. The name is kept as the user typed it (NFKC), for display.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vidconv.api.schemas import MAX_PASSWORD
from vidconv.api.security import create_token, hash_password, verify_password
from vidconv.api.services.errors import BadCredentials, Conflict, Invalid
from vidconv.api.throttle import LoginThrottle
from vidconv.db.models import User, name_key
from vidconv.settings import Settings

LOGIN_FAILED = "usuario o contraseña incorrectos"
TAKEN = "username or email already exists"


def signup(sessions: sessionmaker[Session], username: str, email: str, password: str) -> str:
    """Create a user from validated signup fields; returns the new user's id."""
    username = unicodedata.normalize("NFKC", username)
    if len(username) > 150:
        raise Invalid("username may hold up to 150 letters, digits and . @ + - _")
    key, email = name_key(username), email.lower()
    with sessions() as session:
        taken = session.scalar(
            select(User.id).where(or_(User.username_key == key, User.email == email))
        )
    if taken:
        raise Conflict(TAKEN)
    user = User(username=username, username_key=key, email=email,
                password_hash=hash_password(password))
    try:
        with sessions.begin() as session:
            session.add(user)
    except IntegrityError:  # a concurrent signup won the race
        raise Conflict(TAKEN) from None
    return user.id


def login(
    sessions: sessionmaker[Session], settings: Settings, throttle: LoginThrottle, name: str,
    password: str, address: str,
) -> tuple[str, str]:
    """(token, user id) for a username-or-email and password; BadCredentials alike for every
    failure, Throttled once the account or the address has failed too often."""
    name = name.strip()
    account = name_key(name)
    throttle.check(account, address)
    with sessions() as session:
        user = session.scalar(
            select(User).where(or_(User.username_key == account, User.email == name.lower()))
        )
    ok = verify_password(password[:MAX_PASSWORD], user.password_hash if user else None)
    if not ok or user is None:
        throttle.failed(account, address)
        raise BadCredentials(LOGIN_FAILED)
    throttle.succeeded(account)
    return create_token(settings, user.id), user.id


def user_exists(sessions: sessionmaker[Session], user_id: str) -> bool:
    with sessions() as session:
        return session.get(User, user_id) is not None
