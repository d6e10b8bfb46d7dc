"""Pure pricing of bookings, early exits and overstays, on the lot policy's tariff.

No IO, no clock. Every price is :func:`parkgate_protocol.price_stay` on the tariff of the lot's
policy, the function the gate runs too (rules in ``docs/cloud-api.md``):

- A booking costs ``price_stay(tariff, start, end, vehicle_type)``; a lot books only the vehicle
  types its tariff lists (:func:`bookable`).
- Early-exit credit for the unused part of a paid stay depends on the lot's early-exit rule:
  ``none`` → 0; ``pro_rata`` → the paid price times the unused fraction (rounded down);
  ``whole_hours`` → the paid price minus the price of the used time rounded up to whole hours;
  ``pro_rata_minus_fee`` → pro rata minus the lot's fee, never below 0.
- Overstay: leaving later than end + the policy's overstay grace costs the price of a stay from
  the booking's end to the exit; within the grace nothing is owed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cloud_api.errors import InvalidRequest
from parkgate_protocol import Tariff, price_stay

__all__ = ["bookable", "early_exit_credit", "overstay_charge"]

HOUR = timedelta(hours=1)


def _ceil_hours(span: timedelta) -> int:
    seconds = int(span.total_seconds())
    return -(-seconds // 3600)


def bookable(tariff: Tariff, vehicle_type: str) -> None:
    """``InvalidRequest("no_price")`` unless the tariff lists ``vehicle_type``."""
    if vehicle_type not in tariff.vehicles:
        raise InvalidRequest("no_price", f"the lot's tariff has no price for {vehicle_type}")


def early_exit_credit(
    *,
    paid_cents: int,
    start: datetime,
    end: datetime,
    exited_at: datetime,
    tariff: Tariff,
    vehicle_type: str,
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
        credit = paid_cents - price_stay(tariff, start, start + used_hours * HOUR, vehicle_type)
    else:
        raise ValueError(f"unknown early-exit policy {policy!r}")
    return max(0, min(credit, paid_cents))


def overstay_charge(
    *, end: datetime, exited_at: datetime, grace_minutes: int, tariff: Tariff, vehicle_type: str
) -> int:
    """Charge in cents for leaving after ``end`` + grace: a stay from ``end`` to the exit.
    ``InvalidRequest("unpriceable_stay")`` for an exit the tariff will not price (years late)."""
    if exited_at <= end + timedelta(minutes=grace_minutes):
        return 0
    try:
        return price_stay(tariff, end, exited_at, vehicle_type)
    except ValueError as exc:
        raise InvalidRequest("unpriceable_stay", str(exc)) from None
