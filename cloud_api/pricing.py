"""Pure pricing: hourly rate with a daily cap, early-exit credit, overstay charge.

No IO, no clock. Rules (documented in docs/cloud-api.md):

- A stay is split into whole 24-hour periods from its start, each charged at the daily cap, plus a
  remainder charged per started hour and capped at the daily cap.
- Early-exit credit for the unused part of a paid stay depends on the lot's policy:
  ``none`` → 0; ``pro_rata`` → the paid price times the unused fraction (rounded down);
  ``whole_hours`` → the paid price minus the price of the used time rounded up to whole hours;
  ``pro_rata_minus_fee`` → pro rata minus the lot's fee, never below 0.
- Overstay: leaving later than end + grace is charged at the rate for the time past the end;
  within the grace nothing is owed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "Rate",
    "early_exit_credit",
    "overstay_charge",
    "price_for",
]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Rate:
    hourly_cents: int
    daily_cap_cents: int


def _ceil_hours(span: timedelta) -> int:
    seconds = int(span.total_seconds())
    return -(-seconds // 3600)


def price_for(start: datetime, end: datetime, rate: Rate) -> int:
    """Price in cents of parking from ``start`` to ``end`` (0 for an empty or negative span)."""
    span = end - start
    if span <= timedelta(0):
        return 0
    days, remainder = divmod(span, DAY)
    partial = min(_ceil_hours(remainder) * rate.hourly_cents, rate.daily_cap_cents)
    return int(days) * rate.daily_cap_cents + partial


def early_exit_credit(
    *,
    paid_cents: int,
    start: datetime,
    end: datetime,
    exited_at: datetime,
    rate: Rate,
    policy: str,
    fee_cents: int = 0,
) -> int:
    """Credit in cents for leaving before ``end``; never negative, never more than paid."""
    if exited_at >= end or paid_cents <= 0:
        return 0
    used_from = min(max(exited_at, start), end)
    total = (end - start).total_seconds()
    unused = (end - used_from).total_seconds()
    pro_rata = int(paid_cents * unused // total) if total > 0 else 0
    if policy == "none":
        credit = 0
    elif policy == "pro_rata":
        credit = pro_rata
    elif policy == "pro_rata_minus_fee":
        credit = pro_rata - fee_cents
    elif policy == "whole_hours":
        used_hours = _ceil_hours(used_from - start)
        credit = paid_cents - price_for(start, start + used_hours * HOUR, rate)
    else:
        raise ValueError(f"unknown early-exit policy {policy!r}")
    return max(0, min(credit, paid_cents))


def overstay_charge(*, end: datetime, exited_at: datetime, grace_minutes: int, rate: Rate) -> int:
    """Charge in cents for leaving after ``end`` + grace (counted from ``end``)."""
    if exited_at <= end + timedelta(minutes=grace_minutes):
        return 0
    return price_for(end, exited_at, rate)
