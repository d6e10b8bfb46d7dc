"""A small in-process rate limit: at most ``limit`` hits per key in a sliding ``window``.

Pay by plate is public; the limit makes enumerating plates slow, per client address and per lot
(many addresses against one lot). Per process: with several API workers the effective limit is
that many times higher (the cloud has no shared rate-limit store yet).
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

__all__ = ["RateLimit"]


class RateLimit:
    def __init__(self, limit: int, window: timedelta = timedelta(minutes=1)) -> None:
        self._limit, self._window = limit, window
        self._hits: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: datetime) -> bool:
        """Count a hit for ``key`` at ``now``; False (not counted) when the key is over."""
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self._window:
                hits.popleft()
            if len(hits) >= self._limit:
                return False
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle keys rather than grow without bound
                self._hits = {k: v for k, v in self._hits.items() if v}
            return True
