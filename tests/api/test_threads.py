"""run_in_thread: what a cancelled caller waits for."""

from __future__ import annotations

import asyncio
import threading
import time

from vidconv.api.threads import run_in_thread


def test_a_cancelled_caller_goes_on_only_once_its_call_has_returned() -> None:
    started, returned = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.3)
        returned.set()
        return "done"

    async def main() -> bool:
        caller = asyncio.create_task(run_in_thread(slow))
        while not started.is_set():
            await asyncio.sleep(0.01)
        caller.cancel()
        try:
            await caller
        except asyncio.CancelledError:
            return returned.is_set()
        raise AssertionError("the cancellation was lost")

    assert asyncio.run(main()), "the caller was let go while its thread still ran"


def test_a_call_that_is_not_cancelled_returns_its_value_and_raises_its_error() -> None:
    def fail() -> None:
        raise ValueError("no")

    async def main() -> str:
        try:
            await run_in_thread(fail)
        except ValueError as exc:
            return f"{await run_in_thread(str.upper, 'ok')} {exc}"
        raise AssertionError("the error was lost")

    assert asyncio.run(main()) == "OK no"
