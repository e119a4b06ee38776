"""Login throttling: repeated failures per account and per client address answer 429.

In memory, per API process: a sliding window of failure times per key. After ``limit``
failures within ``window`` seconds, further attempts for that key are refused (429 with
Retry-After: when the oldest failure leaves the window) before the password is even checked,
so guessing costs the guesser time and the server no hashing. A success clears the account's
count. With several API replicas each counts on its own (a guesser gets ``replicas`` times the
attempts): good enough against a brute force, not a substitute for a shared store.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from vidconv.api.services.errors import Throttled

ACCOUNT_LIMIT, ADDRESS_LIMIT, WINDOW_SECONDS = 5, 20, 300.0
MAX_KEYS = 100_000  # bounded memory whatever the guesser sends


class LoginThrottle:
    def __init__(self, account_limit: int = ACCOUNT_LIMIT, address_limit: int = ADDRESS_LIMIT,
                 window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.limits = {"account": account_limit, "address": address_limit}
        self.window, self.clock = window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, account: str, address: str) -> None:
        """Raise Throttled if the account or the address has failed too often lately."""
        now = self.clock()
        with self._lock:
            for kind, key in (("account", f"account:{account}"), ("address", f"address:{address}")):
                times = self._recent(key, now)
                if len(times) >= self.limits[kind]:
                    wait = max(1, math.ceil(times[0] + self.window - now))
                    raise Throttled(f"too many failed log-ins for this {kind}; try again "
                                    f"in {wait} seconds", retry_after=wait)

    def failed(self, account: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= MAX_KEYS:
                self._failures.clear()
            for key in (f"account:{account}", f"address:{address}"):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._failures.pop(f"account:{account}", None)
