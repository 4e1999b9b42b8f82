"""Login attempts limited: after ``LIMIT`` failures in ``WINDOW`` seconds for one client address, or
for one user name or project id, ``/oauth/token`` answers 429 with ``Retry-After`` until the oldest
of those failures leaves the window. Other clients and other names are not affected.

The counts live in the worker's memory: with several workers (``serve --workers N``) the limit
holds per worker at least (a client spread over N workers gets at most N x ``LIMIT`` tries).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from .problems import Problem

LIMIT = 10  # failed attempts
WINDOW = 60.0  # seconds
MAX_KEYS = 10_000  # addresses and names followed at most (the oldest forgotten first)


class LoginLimiter:
    """Counts failed logins per key and refuses attempts of a key over the limit.

    Args:
        limit: Failures allowed within ``window`` seconds.
        window: The window, in seconds.
        clock: The time source (``time.monotonic``).
    """

    def __init__(self, limit: int = LIMIT, window: float = WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def attempt(self, address: str, name: str) -> Attempt:
        """Start a login attempt by ``address`` for ``name`` (``user:NAME`` or ``project:ID``).

        Raises:
            Problem: 429 with ``Retry-After`` when the address or the name is over the limit.
        """
        keys = (f"address:{address}", name)
        now = self._clock()
        with self._lock:
            wait = max(self._wait(key, now) for key in keys)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Problem(429, f"too many failed logins; try again in {seconds} s",
                          {"Retry-After": str(seconds)})  # fmt: skip
        return Attempt(self, keys)

    def _wait(self, key: str, now: float) -> float:
        failures = self._failures.get(key)
        if failures is None:
            return 0.0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0.0
        return failures[0] + self.window - now if len(failures) >= self.limit else 0.0

    def record(self, keys: tuple[str, ...]) -> None:
        """One failure for each of ``keys``."""
        now = self._clock()
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=self.limit)).append(now)
            while len(self._failures) > MAX_KEYS:
                del self._failures[next(iter(self._failures))]


class Attempt:
    """One login attempt; :meth:`failed` counts it against its address and name."""

    def __init__(self, limiter: LoginLimiter, keys: tuple[str, ...]) -> None:
        self._limiter, self._keys = limiter, keys

    def failed(self) -> None:
        self._limiter.record(self._keys)
