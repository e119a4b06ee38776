"""Where the server may connect on a user's behalf: URL inputs and webhook deliveries.

Policy "public" accepts only http(s) URLs whose host resolves to global addresses only, so a
user cannot make the server reach loopback, the private network or cloud metadata
(169.254.169.254); "any" drops the address check (trusted networks, tests). The check runs
right before each connection (each redirect hop of a download, each delivery attempt). Known
gap: a DNS answer may change between the check and the connection (rebinding); put an egress
proxy in front for hostile multi-tenant setups.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class Refused(Exception):
    """The URL is not one the server may connect to; the message says why, in one sentence."""


async def check_target(url: str, policy: str) -> None:
    """Refused unless ``url`` is http(s) and (policy "public") resolves to global addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("only http and https URLs are accepted")
    if policy == "any":
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the URL's port is not a number from 0 to 65535") from None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        raise Refused(f"cannot resolve the host {parts.hostname!r}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise Refused("the URL points to a private or local address, which is not allowed")
