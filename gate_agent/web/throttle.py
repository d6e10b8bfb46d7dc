"""Login throttling, per (username, client address), counted in the agent's store.

Every attempt is counted *before* the password is checked, in one upsert statement
(:meth:`gate_agent.store.Store.count_login_attempt`), so parallel guesses cannot all pass a
"fewer than N so far" check; a successful login clears the pair's count. Keying on the pair means
an attacker guessing from one address locks out only that address for that name: the operator
still logs in from the booth. Counters of past windows are pruned on every attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gate_agent.store import Store

__all__ = ["LoginThrottle"]

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
