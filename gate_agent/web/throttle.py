"""Login throttling, per (username, client address), counted in the agent's store.

Every attempt is counted *before* the password is checked, in one upsert statement
(:meth:`gate_agent.store.Store.count_login_attempt`), so parallel guesses cannot all pass a
"fewer than N so far" check; a successful login clears the pair's count. Keying on the pair means
an attacker guessing from one address locks out only that address for that name: the operator
still logs in from the booth. Counters of past windows are pruned on every attempt.

The lane code page (:mod:`gate_agent.web.pages_code`) has its own limit, :class:`CodeThrottle`:
in memory (a restart forgets it, which only gives a guesser one more minute), at most
``per_address`` tries per lane and client address and ``per_lane`` tries per lane from anyone in
a sliding ``window_s``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from gate_agent.store import Store

__all__ = ["CodeThrottle", "LoginThrottle"]

MAX_NAME = 64  # longer names are throttled under their first 64 characters


def _key(username: str) -> str:
    return username.strip().lower()[:MAX_NAME]


@dataclass(frozen=True)
class LoginThrottle:
    """At most ``max_failures`` attempts per username and address within ``window_s``."""

    max_failures: int = 5
    window_s: float = 300.0

    def attempt(self, store: Store, username: str, address: str) -> float | None:
        """Count an attempt; seconds to wait when over the limit, None when it may proceed."""
        window = timedelta(seconds=self.window_s)
        attempts, left = store.count_login_attempt(_key(username), address, window)
        if attempts <= self.max_failures:
            return None
        return max(1.0, left.total_seconds())

    def succeeded(self, store: Store, username: str, address: str) -> None:
        store.clear_login_attempts(_key(username), address)


@dataclass
class CodeThrottle:
    """Tries on a lane's code page: per (lane, address) and per lane, in a sliding window."""

    per_address: int = 5
    per_lane: int = 30
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    max_tracked: int = 10_000  # (lane, address) pairs remembered; the oldest go first
    _tries: dict[tuple[str, str], deque[float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attempt(self, lane_id: str, address: str) -> float | None:
        """Count a try; seconds to wait when over a limit (the try is not counted), else None."""
        now = self.clock()
        with self._lock:
            lane = self._recent((lane_id, ""), now)
            mine = self._recent((lane_id, address), now)
            for tries, limit in ((mine, self.per_address), (lane, self.per_lane)):
                if len(tries) >= limit:
                    return max(1.0, tries[0] + self.window_s - now)
            lane.append(now)
            mine.append(now)
            return None

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        tries = self._tries.pop(key, None) or deque()
        while tries and tries[0] <= now - self.window_s:
            tries.popleft()
        if len(self._tries) >= self.max_tracked:
            self._tries.pop(next(iter(self._tries)))
        self._tries[key] = tries  # re-inserted: the dict's order is least recently used first
        return tries
