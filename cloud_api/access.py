"""Online gate answers: may this plate enter or leave now, and what is owed (pure rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud_api.models import Booking
from cloud_api.pricing import overstay_charge
from parkgate_protocol import AntiPassbackMode, LotPolicy

__all__ = ["AccessVerdict", "decide_access"]


@dataclass(frozen=True, slots=True)
class AccessVerdict:
    allowed: bool
    reason: str
    owed_cents: int = 0


def decide_access(
    booking: Booking | None, policy: LotPolicy, direction: str, now: datetime
) -> AccessVerdict:
    """The lot's policy decides: graces, anti-passback, and the overstay owed at the exit."""
    if booking is None:
        return AccessVerdict(False, "no_reservation")
    if booking.status in ("cancelled", "expired"):
        return AccessVerdict(False, booking.status)
    if booking.status == "pending":
        return AccessVerdict(False, "not_paid")
    owed = booking.amount_owed_cents
    if direction == "exit":
        if booking.exited_at is None:
            owed += overstay_charge(
                end=booking.end_time,
                exited_at=now,
                grace_minutes=policy.overstay_grace_minutes,
                tariff=policy.tariff,
                vehicle_type=booking.vehicle_type,
            )
        return AccessVerdict(owed == 0, "exit_paid" if owed == 0 else "payment_due", owed)
    if owed:
        return AccessVerdict(False, "payment_due", owed)
    if booking.status == "completed":
        return AccessVerdict(False, "expired")
    if now < booking.start_time - timedelta(minutes=policy.early_grace_minutes):
        return AccessVerdict(False, "too_early")
    if now > booking.end_time + timedelta(minutes=policy.late_grace_minutes):
        return AccessVerdict(False, "expired")
    if booking.arrived_at is not None and booking.exited_at is None:
        if policy.anti_passback is AntiPassbackMode.HARD:
            return AccessVerdict(False, "already_inside")
        if policy.anti_passback is AntiPassbackMode.SOFT:
            return AccessVerdict(True, "soft_passback")
    return AccessVerdict(True, "reservation_valid")
