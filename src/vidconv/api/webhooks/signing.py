"""The signature on every delivery, as Stripe and Mux sign theirs.

``vidconv-signature: t=<unix time>,v1=<hex>``: HMAC-SHA256, keyed with the whole secret string
(``whsec_…``, as UTF-8), over ``"<t>." + body``. While a rotated-out secret is still valid, a
second ``v1=`` signed with it follows: a receiver that checks any ``v1`` against its one secret
keeps working through a rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

HEADER = "vidconv-signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def signature_header(keys: Sequence[str], timestamp: int, body: bytes) -> str:
    """The header's value: the timestamp, then one ``v1`` per secret (current first)."""
    return ",".join([f"t={timestamp}", *(f"v1={sign(k, timestamp, body)}" for k in keys)])
