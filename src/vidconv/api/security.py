"""Passwords (argon2id through passlib's API) and tokens (JWT HS256, algorithm pinned)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from functools import lru_cache
from pathlib import Path

import jwt
from passlib.context import CryptContext

from vidconv.settings import Settings

ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]

# argon2id, passlib's defaults (64 MiB, t=3, p=4). Old hashes get flagged by needs_update
# when the parameters change.
_passwords = CryptContext(schemes=["argon2"], argon2__type="ID")


class InvalidToken(Exception):
    pass


def hash_password(password: str) -> str:
    return str(_passwords.hash(password))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return str(_passwords.hash(secrets.token_urlsafe(16)))


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash (unknown user) spend the same time and say no."""
    if password_hash is None:
        _passwords.verify(password, _dummy_hash())
        return False
    try:
        return bool(_passwords.verify(password, password_hash))
    except (ValueError, TypeError):
        return False


def create_token(settings: Settings, user_id: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": user_id,
        "iat": issued,
        "exp": issued + settings.token_lifetime_seconds,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_token(settings: Settings, token: str) -> str:
    """The user id in a valid token; InvalidToken for anything else (alg none included)."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("no subject")
    return sub


# A browser's EventSource cannot send an Authorization header. The page asks for a stream
# token instead (POST /api/tasks/{id}/events/session, with its Bearer token) and gets it as an
# HttpOnly cookie scoped to that one task's events: never in a URL (access logs, Referer), never
# readable by scripts, valid a few minutes, for one task, and of an audience of its own, so it is
# refused on every other route and a login token is refused in its place.
STREAM_TOKEN_SECONDS = 300
STREAM_COOKIE_NAME = "vidconv_events"


def stream_audience(settings: Settings) -> str:
    return f"{settings.jwt_audience}:events"


def create_stream_token(settings: Settings, user_id: str, task_id: str,
                        now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {"sub": user_id, "task": task_id, "iat": issued,
              "exp": issued + STREAM_TOKEN_SECONDS, "iss": settings.jwt_issuer,
              "aud": stream_audience(settings)}
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_stream_token(settings: Settings, token: str, task_id: str) -> str:
    """The user id in a valid stream token for ``task_id``; InvalidToken for anything else."""
    try:
        claims = jwt.decode(
            token, settings.jwt_secret, algorithms=[ALGORITHM],
            audience=stream_audience(settings), issuer=settings.jwt_issuer,
            options={"require": [*_REQUIRED_CLAIMS, "task"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    sub = claims.get("sub")
    if claims.get("task") != task_id or not isinstance(sub, str) or not sub:
        raise InvalidToken("not a stream token of this task")
    return sub


# -- signed file URLs ------------------------------------------------------------------------------

_FILES_KEY = b"vidconv signed file URLs"


class BadSignature(Exception):
    """A signed file URL that is forged, for another task, or past its expiry."""


def _files_key(settings: Settings) -> bytes:
    # Derived from the JWT secret (every API replica has it), never the JWT secret itself: a
    # leaked file URL signature says nothing about how tokens are signed.
    return hmac.new(settings.jwt_secret.encode(), _FILES_KEY, hashlib.sha256).digest()


def sign_files(settings: Settings, task_id: str, expires: int) -> str:
    """The path segment that lets a plain GET read a task's outputs until ``expires`` (Unix
    time): ``<expires>-<HMAC-SHA256 over the task and the expiry>``. It stands for the task's
    whole output folder, so a playlist's relative URIs (``720p.m3u8``) resolve under it."""
    digest = hmac.new(_files_key(settings), f"{task_id}/{expires}".encode(), hashlib.sha256)
    return f"{expires}-{base64.urlsafe_b64encode(digest.digest()).decode().rstrip('=')}"


def check_files(settings: Settings, task_id: str, token: str, now: float | None = None) -> int:
    """The expiry of a valid signature for ``task_id``; BadSignature otherwise."""
    expires, _, _ = token.partition("-")
    if not expires.isdigit() or len(expires) > 12:
        raise BadSignature("not a signed link")
    if not hmac.compare_digest(sign_files(settings, task_id, int(expires)), token):
        raise BadSignature("the signature does not match this task")
    if int(expires) < (now if now is not None else time.time()):
        raise BadSignature("the link has expired")
    return int(expires)


def load_or_create_secret(data_dir: Path) -> str:
    """The embedded mode's JWT secret: generated once, kept (mode 0600) in the data dir."""
    path = data_dir / "jwt-secret"
    try:
        secret = path.read_text().strip()
        if secret:
            return secret
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    tmp = path.with_name(path.name + f".{secrets.token_hex(4)}")
    tmp.touch(mode=0o600)
    tmp.write_text(secret + "\n")
    try:
        # link() fails if another process won the race: then use theirs.
        path.hardlink_to(tmp)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return secret
