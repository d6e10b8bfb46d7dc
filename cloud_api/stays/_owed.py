"""What a stay owes through a moment, on the stay's own tariff (``price_stay``, the function the
gate runs too). Pure: the policies and booking are given.

- a permit stay owes nothing;
- a drive-up stay owes ``price_stay(tariff at entry, entered_at, through)``;
- a booking's stay owes its overstay: a stay from the booking's end to ``through`` once past
  end + the policy's overstay grace (``cloud_api.pricing.overstay_charge``).

Less what was paid. A stay paid through T may leave until T + ``paid_exit_minutes`` without a
new charge (as at the gate), so inside that window it owes nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud_api.models import StayKind
from cloud_api.pricing import overstay_charge
from parkgate_protocol import LotPolicy, price_stay

__all__ = ["StayTerms", "gross_price", "outstanding"]


@dataclass(frozen=True, slots=True)
class StayTerms:
    """Everything a stay's price depends on."""

    kind: str
    entered_at: datetime
    vehicle_type: str
    entry_policy: LotPolicy  # the tariff the stay entered under (drive-up)
    policy: LotPolicy  # the policy in force (overstay: as the gate prices it)
    booking_end: datetime | None  # a booking's stay


def gross_price(terms: StayTerms, through: datetime) -> int:
    """The whole stay's price up to ``through``; ``ValueError`` when the tariff will not price
    it (``InvalidRequest("unpriceable_stay")`` for an overstay)."""
    if terms.kind == StayKind.PERMIT:
        return 0
    if terms.kind == StayKind.BOOKING:
        if terms.booking_end is None:
            return 0
        return overstay_charge(
            end=terms.booking_end,
            exited_at=through,
            grace_minutes=terms.policy.overstay_grace_minutes,
            tariff=terms.policy.tariff,
            vehicle_type=terms.vehicle_type,
        )
    if through <= terms.entered_at:
        return 0
    return price_stay(terms.entry_policy.tariff, terms.entered_at, through, terms.vehicle_type)


def outstanding(
    terms: StayTerms, *, paid_cents: int, paid_through: datetime | None, at: datetime
) -> int:
    """What the stay owes at ``at`` beyond what was paid (never negative)."""
    if paid_through is not None:
        window = paid_through + timedelta(minutes=terms.policy.paid_exit_minutes)
        if at <= window:
            return 0
    return max(0, gross_price(terms, at) - paid_cents)
