"""Bounds on the times a lot reports (arrival, exit): pure, no IO, no clock.

A lot's clock can be wrong and a report can be forged by whoever holds the device token, so a
reported time is kept inside what can have happened: never before the stay's entry (or, for a
booking that never arrived, before the booking existed) and never after the cloud's now plus a
small clock-skew allowance (``Settings.stay_clock_skew_seconds``).

A time out of bounds is **clamped and flagged**, not refused: the car did pass the barrier, and a
refused event would leave its stay open (and its space blocked) forever while the lot re-sends it.
The flag is kept on the stay and in the event log, and a flagged exit earns no early-exit credit
(``cloud_api.visits.record_exit``): a clamped time is not evidence of leaving early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["DEFAULT_CLOCK_SKEW", "ReportedTime", "bound_reported_time"]

DEFAULT_CLOCK_SKEW = timedelta(seconds=120)

AFTER_NOW = "after_now"  # later than the cloud's now + skew: moved to now
BEFORE_ENTRY = "before_entry"  # before the stay's entry (or the booking's creation): moved there


@dataclass(frozen=True, slots=True)
class ReportedTime:
    at: datetime
    flag: str | None  # why ``at`` is not the reported time; None when it was within bounds


def bound_reported_time(
    at: datetime, *, not_before: datetime | None, now: datetime, skew: timedelta
) -> ReportedTime:
    """``at`` if it lies in [``not_before``, ``now`` + ``skew``]; else the nearest bound that
    surely happened (``now`` for a future time, ``not_before`` for an early one), flagged."""
    if at > now + skew:
        return ReportedTime(max(now, not_before) if not_before else now, AFTER_NOW)
    if not_before is not None and at < not_before:
        return ReportedTime(not_before, BEFORE_ENTRY)
    return ReportedTime(at, None)
