"""Sliding windows of failed logins, kept in memory and bounded in size."""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class FailureWindow:
    """Counts failures per key over a window; a key over the limit is blocked until they age out."""

    def __init__(self, *, limit: int, window_seconds: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None when it may try now."""
        now = time.monotonic()
        failures = self._recent(key, now)
        if failures is None or len(failures) < self.limit:
            return None
        return int(failures[0] + self.window - now) + 1

    def fail(self, key: str) -> None:
        now = time.monotonic()
        failures = self._recent(key, now)
        if failures is None:
            failures = self._failures[key] = deque()
        failures.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def release(self, key: str) -> None:
        """Take back the most recent failure of `key` (an attempt counted ahead that passed)."""
        failures = self._failures.get(key)
        if failures:
            failures.pop()

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)
