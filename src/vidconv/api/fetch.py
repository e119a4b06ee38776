"""Download a task's input from an http(s) URL, guarded against SSRF and oversized bodies.

Policy (``VIDCONV_URL_INPUTS``): "public" (default) and "any" as ``vidconv.api.egress`` checks
them; "off" refuses URL inputs. Redirects are followed by hand, at most 5, each hop checked
again (scheme and addresses).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from vidconv.api.egress import Refused, check_target
from vidconv.api.services.errors import BadInput, TooLarge

MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def is_url(value: str) -> bool:
    return "://" in value or value.lower().startswith(("http:", "https:", "file:", "data:"))


async def _check_target(url: str, policy: str) -> None:
    try:
        await check_target(url, policy)
    except Refused as exc:
        raise BadInput(str(exc)) from None


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
