"""Reading a stay's money from the database: its pricing terms and what it owes now."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import Booking, Payment, PaymentKind, Stay, StayKind, StayStatus
from cloud_api.policies import current_policy, policy_at
from cloud_api.stays._owed import StayTerms, outstanding

__all__ = [
    "Owed",
    "find_stay",
    "new_session_id",
    "owed_now",
    "stay_terms",
    "void_unpaid_booking_stay_payments",
    "void_unpaid_stay_payments",
]


def new_session_id() -> str:
    """``ps_`` + 26 base32 characters (128 random bits): the public id of a stay."""
    return "ps_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


@dataclass(frozen=True, slots=True)
class Owed:
    cents: int  # beyond what was paid
    through: datetime  # priced up to this moment
    priced: bool = True  # False: the tariff would not price it (the amount is the gate's)


def find_stay(
    session: Session, lot_id: int, gate_stay_id: str, *, for_update: bool = False
) -> Stay | None:
    stmt = select(Stay).where(Stay.lot_id == lot_id, Stay.gate_stay_id == gate_stay_id)
    return session.scalars(stmt.with_for_update() if for_update else stmt).first()


def stay_terms(session: Session, stay: Stay) -> StayTerms:
    booking = session.get(Booking, stay.booking_id) if stay.booking_id else None
    return StayTerms(
        kind=stay.kind,
        entered_at=stay.entered_at,
        vehicle_type=stay.vehicle_type,
        entry_policy=policy_at(session, stay.lot_id, stay.policy_version),
        policy=current_policy(session, stay.lot_id),
        booking_end=booking.end_time if booking else None,
    )


def owed_now(session: Session, stay: Stay, now: datetime) -> Owed:
    """What the stay owes at ``now``: a closed stay what its exit left owing (a booking's stay:
    the booking's ``amount_owed_cents``, the one number both ways of paying reduce), an open one
    its price up to ``now`` less what was paid."""
    if stay.kind == StayKind.PERMIT:
        return Owed(0, now)
    if stay.status == StayStatus.CLOSED:
        through = stay.exited_at or now
        if stay.booking_id:
            booking = session.get(Booking, stay.booking_id)
            return Owed(booking.amount_owed_cents if booking else 0, through)
        return Owed(max(0, stay.amount_due_cents - stay.paid_cents), through)
    terms = stay_terms(session, stay)
    try:
        cents = outstanding(
            terms, paid_cents=stay.paid_cents, paid_through=stay.paid_through, at=now
        )
    except ValueError:  # an overstay the tariff will not price is an InvalidRequest too
        return Owed(max(0, stay.amount_due_cents - stay.paid_cents), now, priced=False)
    return Owed(cents, now)


def void_unpaid_stay_payments(session: Session, stay: Stay, now: datetime) -> int:
    """A closed stay that owes nothing: its payments not yet paid (a declined one, one started
    twice) can no longer be paid, so the same stay is never paid twice (money that still
    arrives through an open checkout is refunded by the webhook). Returns how many."""
    unpaid = session.scalars(
        select(Payment).where(
            Payment.stay_id == stay.id,
            Payment.kind == PaymentKind.STAY.value,
            Payment.status.in_(("requires_payment", "failed")),
        )
    ).all()
    for payment in unpaid:
        payment.status = "cancelled"
        payment.updated_at = now
    return len(unpaid)


def void_unpaid_booking_stay_payments(session: Session, booking_id: str, now: datetime) -> int:
    """A booking whose debt was settled another way (its extension or overstay payment): the
    pay-by-plate payments of its closed stay can no longer be paid either. Returns how many."""
    closed = session.scalars(
        select(Stay).where(Stay.booking_id == booking_id, Stay.status == StayStatus.CLOSED.value)
    ).all()
    return sum(void_unpaid_stay_payments(session, stay, now) for stay in closed)
