"""Sign-up and log-in: validation, uniqueness, password checks, token issue."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vidconv.api.errors import ApiError, unprocessable
from vidconv.api.security import create_token, hash_password, verify_password
from vidconv.db.models import User
from vidconv.settings import Settings

USERNAME = re.compile(r"^[\w.@+-]{1,150}$")
# Deliberately simple: one @, a dot in the domain, no spaces. Deliverability is not checkable here.
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; this only bounds the work per request
LOGIN_FAILED = "usuario o contraseña incorrectos"


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        raise unprocessable(f"{key} is required")
    if not isinstance(value, str):
        raise unprocessable(f"{key} must be a string")
    return value


def signup(sessions: sessionmaker[Session], data: dict[str, Any]) -> str:
    """Create a user from the seed's signup fields; returns the new user's id."""
    username = _text(data, "username").strip()
    email = _text(data, "email").strip().lower()
    password1, password2 = _text(data, "password1"), _text(data, "password2")
    if not USERNAME.match(username):
        raise unprocessable("username may hold up to 150 letters, digits and . @ + - _")
    if len(email) > 254 or not EMAIL.match(email):
        raise unprocessable("email is not a valid address")
    if password1 != password2:
        raise unprocessable("passwords do not match")
    if not MIN_PASSWORD <= len(password1) <= MAX_PASSWORD:
        raise unprocessable(f"password must be at least {MIN_PASSWORD} characters")
    with sessions() as session:
        taken = session.scalar(
            select(User.id).where(or_(User.username == username, User.email == email))
        )
    if taken:
        raise ApiError(409, "username or email already exists")
    user = User(username=username, email=email, password_hash=hash_password(password1))
    try:
        with sessions.begin() as session:
            session.add(user)
    except IntegrityError:  # a concurrent signup won the race
        raise ApiError(409, "username or email already exists") from None
    return user.id


def login(
    sessions: sessionmaker[Session], settings: Settings, data: dict[str, Any]
) -> tuple[str, str]:
    """(token, user id) for a username-or-email and password; 401 alike for every failure."""
    name = _text(data, "username").strip()
    password = _text(data, "password")
    with sessions() as session:
        user = session.scalar(
            select(User).where(or_(User.username == name, User.email == name.lower()))
        )
    ok = verify_password(password[:MAX_PASSWORD], user.password_hash if user else None)
    if not ok or user is None:
        raise ApiError(401, LOGIN_FAILED)
    return create_token(settings, user.id), user.id


def user_exists(sessions: sessionmaker[Session], user_id: str) -> bool:
    with sessions() as session:
        return session.get(User, user_id) is not None
