"""A rate limiter for channels with sending limits (Telegram: about one message a second
per chat and 30 a second overall), with an injectable clock and sleep for tests."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most one send per ``per_key_interval`` seconds for each key (a chat) and at most
    ``global_limit`` sends in any ``global_window`` seconds overall; a key (or everything,
    ``key=None``) can be blocked for a while after the other side said "too many
    requests". :meth:`acquire` sleeps until a send is allowed, then counts it."""

    def __init__(
        self,
        *,
        per_key_interval: float = 1.0,
        global_limit: int = 30,
        global_window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if per_key_interval < 0 or global_limit < 1 or global_window <= 0:
            raise ValueError("rate limiter: intervals must be >= 0 and the limit >= 1")
        self.per_key_interval = per_key_interval
        self.global_limit = global_limit
        self.global_window = global_window
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._recent: deque[float] = deque()
        self._blocked: dict[str | None, float] = {}

    def _wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may send (0: now)."""
        while self._recent and self._recent[0] <= now - self.global_window:
            self._recent.popleft()
        waits = [0.0]
        last = self._last.get(key)
        if last is not None:
            waits.append(last + self.per_key_interval - now)
        if len(self._recent) >= self.global_limit:
            waits.append(self._recent[0] + self.global_window - now)
        waits.append(self._blocked.get(key, 0.0) - now)
        waits.append(self._blocked.get(None, 0.0) - now)
        return max(waits)

    def acquire(self, key: str) -> float:
        """Wait until ``key`` may send and count the send; the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                wait = self._wait(key, now)
                if wait <= 0:
                    self._last[key] = now
                    self._recent.append(now)
                    return waited
            self.sleep(wait)
            waited += wait

    def block(self, key: str | None, seconds: float) -> None:
        """No send for ``key`` (``None``: for any key) in the next ``seconds``."""
        with self._lock:
            until = self.clock() + max(0.0, seconds)
            self._blocked[key] = max(self._blocked.get(key, 0.0), until)
