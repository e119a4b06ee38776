"""Blocking calls made from the event loop that a cancellation cannot cut short."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def run_in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn`` in a worker thread; a cancelled caller still waits for it to return.

    A thread cannot be stopped. ``asyncio.to_thread`` lets its caller go at once when cancelled,
    so a background loop stopped at shutdown could leave a database call running after the
    engine was disposed: its connection closed under it, the socket's number taken by another
    connection whose replies it then read, and the process never finished stopping.
    """
    call = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.wait([call])
        if not call.cancelled():
            call.exception()  # retrieved: the caller was cancelled, nobody else will
        raise
