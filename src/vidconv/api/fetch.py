"""Download a task's input from an http(s) URL, guarded against SSRF and oversized bodies.

Policy (``VIDCONV_URL_INPUTS``): "public" (default) accepts only http(s) URLs whose host resolves
to global addresses only, so a user cannot make the server fetch from loopback, the private
network or cloud metadata (169.254.169.254); "any" drops the address check (trusted networks,
tests); "off" refuses URL inputs. Redirects are followed by hand, at most 5, each hop checked
again (scheme and addresses). Known gap: a DNS answer may change between the check and the
connection (rebinding); put an egress proxy in front for hostile multi-tenant setups.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from vidconv.api.services.errors import BadInput, TooLarge

MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def is_url(value: str) -> bool:
    return "://" in value or value.lower().startswith(("http:", "https:", "file:", "data:"))


async def _check_target(url: str, policy: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput("only http and https URLs are accepted as input")
    if policy == "any":
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except OSError:
        raise BadInput(f"cannot resolve the host {parts.hostname!r}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise BadInput("the URL points to a private or local address, which is not allowed")


def url_filename(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name or "input"


async def download(url: str, tmp_dir: Path, max_bytes: int, policy: str) -> tuple[Path, str]:
    """Fetch ``url`` into a temp file; returns (path, name from the URL); BadInput or TooLarge
    on refusal."""
    if policy == "off":
        raise BadInput("URL inputs are turned off on this server")
    fd, name = tempfile.mkstemp(prefix="fetch-", dir=tmp_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    await _check_target(url, policy)
                    async with client.stream("GET", url) as resp:
                        if resp.is_redirect and "location" in resp.headers:
                            url = urljoin(url, resp.headers["location"])
                            continue
                        if resp.status_code != 200:
                            raise BadInput(f"the URL answered HTTP {resp.status_code}")
                        declared = resp.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > max_bytes:
                            raise TooLarge(max_bytes)
                        size = 0
                        async for chunk in resp.aiter_bytes(1024 * 1024):
                            size += len(chunk)
                            if size > max_bytes:
                                raise TooLarge(max_bytes)
                            out.write(chunk)
                        return path, url_filename(url)
                raise BadInput("the URL redirects too often")
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise BadInput(f"cannot download the URL: {type(exc).__name__}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
