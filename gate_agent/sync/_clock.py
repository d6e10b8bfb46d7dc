"""The lot's clock against the cloud's (in :mod:`gate_agent.sync`), measured from ``EventAck``s.

Pure, no IO. Each ack carries the cloud's ``acked_at``; the lot's clock when the ack arrives,
less that, is the offset plus the ack's trip through the broker (never negative). The smallest of
the last few samples is therefore the best estimate of the offset. It goes to the heartbeat
(``Status.clock_offset_s``) and the status page; the sync client journals it (a ``health`` event)
when it first is, or moves, :data:`JOURNAL_THRESHOLD_S` or more away from what was last journaled,
so a Pi whose clock is wrong (it prices stays and stamps every event) is visible in the journal.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

__all__ = ["JOURNAL_THRESHOLD_S", "ClockOffset"]

JOURNAL_THRESHOLD_S = 5.0
SAMPLES = 8


class ClockOffset:
    """The lot's clock minus the cloud's, in seconds (None until the first ack)."""

    def __init__(self, threshold_s: float = JOURNAL_THRESHOLD_S) -> None:
        self.threshold_s = threshold_s
        self._samples: deque[float] = deque(maxlen=SAMPLES)
        self.journaled_s: float | None = None  # the offset last journaled

    @property
    def offset_s(self) -> float | None:
        if not self._samples:
            return None
        return min(self._samples)

    def observe(self, lot_now: datetime, cloud_at: datetime) -> float | None:
        """Add a sample; returns the offset when it is to be journaled, else None."""
        self._samples.append((lot_now - cloud_at).total_seconds())
        offset = self.offset_s
        assert offset is not None
        last = 0.0 if self.journaled_s is None else self.journaled_s
        if abs(offset - last) < self.threshold_s:
            return None
        self.journaled_s = offset
        return offset
