"""Online gate answers: may this plate enter or leave now, and what is owed (pure rules)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud_api.models import Booking
from cloud_api.pricing import overstay_charge
from parkgate_protocol import AntiPassbackMode, LotPolicy

__all__ = ["AccessVerdict", "ListWindow", "apply_access_list", "decide_access"]


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


@dataclass(frozen=True, slots=True)
class ListWindow:
    """An access-list entry of the plate: its kind and validity window (open ends: None)."""

    kind: str
    valid_from: datetime | None
    valid_until: datetime | None

    def covers(self, now: datetime) -> bool:
        after_start = self.valid_from is None or self.valid_from <= now
        return after_start and (self.valid_until is None or now < self.valid_until)


def apply_access_list(
    verdict: AccessVerdict, entries: Iterable[ListWindow], direction: str, now: datetime
) -> AccessVerdict:
    """The plate's access-list entries in force now: a deny refuses entry whatever the booking
    says (``denylisted``); an allow opens where the booking would not, unless money is owed
    (``allowlisted``)."""
    kinds = {e.kind for e in entries if e.covers(now)}
    if direction == "entry" and "deny" in kinds:
        return AccessVerdict(False, "denylisted")
    if not verdict.allowed and not verdict.owed_cents and "allow" in kinds:
        return AccessVerdict(True, "allowlisted")  # never waives money owed
    return verdict
