"""Blocking calls made from the event loop that a cancellation cannot cut short."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def run_in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn`` in a worker thread; a cancelled caller still waits for it to return.

    A thread cannot be stopped, and ``asyncio.to_thread`` lets a cancelled caller go at once
    while its call runs on. A background loop cancelled at shutdown could then still be inside a
    database call when the lifespan disposes the engine, and the event loop's own shutdown waits
    for that thread however long it takes.
    """
    call = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.wait([call])
        if not call.cancelled():
            call.exception()  # retrieved: the caller was cancelled, nobody else will
        raise
