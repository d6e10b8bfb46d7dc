"""A customer's erasure of their own data (``DELETE /me/data``).

Refused while it would break a stay or lose money: a booking still pending, confirmed and not yet
over, or a car still inside (``booking_active``); an amount owed or a payment or refund in flight
(``money_pending``). Otherwise: name, email and phone replaced, saved vehicles deleted, plates
blanked in the customer's bookings and their gate events, plates scrubbed from their booking
history and stored idempotent answers deleted, unsent emails to them dropped, every token
revoked. Bookings and payments stay (amounts, times, ids: the lot's accounting) without plate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from cloud_api.auth import revoke_user_tokens
from cloud_api.changes import log_event
from cloud_api.lot_sync import GateEventRecord
from cloud_api.models import (
    Booking,
    BookingStatus,
    EventLog,
    IdempotencyRecord,
    OutboxMessage,
    Payment,
    User,
    Vehicle,
)
from cloud_api.notifications import EMAIL_KIND
from cloud_api.retention._plates import BLANK_PLATE, scrub_plates

__all__ = ["Erased", "ErasureRefused", "check_erasable", "erase_customer"]

IN_FLIGHT_PAYMENTS = ("pending", "processing", "refund_pending", "requires_capture")
"""Payment statuses whose money is still moving (a charge being taken, a refund being paid)."""


class ErasureRefused(Exception):
    """The data cannot be erased now; ``reason`` and ``detail`` say why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Erased:
    bookings_kept: int
    vehicles_deleted: int
    gate_events_blanked: int


def _active_bookings(session: Session, user_id: int, now: datetime) -> list[str]:
    inside = (Booking.arrived_at.is_not(None)) & (Booking.exited_at.is_(None))
    running = (Booking.status == BookingStatus.CONFIRMED.value) & (Booking.end_time > now)
    stmt = select(Booking.id).where(
        Booking.user_id == user_id,
        or_(Booking.status == BookingStatus.PENDING.value, running, inside),
    )
    return list(session.scalars(stmt))


def _money_pending(session: Session, user_id: int) -> list[str]:
    owed = select(Booking.id).where(Booking.user_id == user_id, Booking.amount_owed_cents > 0)
    moving = (
        select(Booking.id)
        .join(Payment, Payment.booking_id == Booking.id)
        .where(Booking.user_id == user_id, Payment.status.in_(IN_FLIGHT_PAYMENTS))
    )
    return sorted(set(session.scalars(owed)) | set(session.scalars(moving)))


def check_erasable(session: Session, user_id: int, now: datetime) -> None:
    """Raise :class:`ErasureRefused` when the customer's data must stay for now."""
    active = _active_bookings(session, user_id, now)
    if active:
        raise ErasureRefused(
            "booking_active",
            f"bookings {', '.join(active)} are pending, running or the car is inside: "
            "cancel them or wait until they are over",
        )
    pending = _money_pending(session, user_id)
    if pending:
        raise ErasureRefused(
            "money_pending",
            f"bookings {', '.join(pending)} have an amount owed or a payment or refund in "
            "progress: settle it first",
        )


def erase_customer(session: Session, user: User, now: datetime) -> Erased:
    """Erase ``user``'s personal data (the caller commits); see the module docstring."""
    check_erasable(session, user.id, now)
    booking_ids = list(session.scalars(select(Booking.id).where(Booking.user_id == user.id)))
    old_email = user.email
    user.name, user.email, user.phone = "erased", f"erased-{user.id}@erased.invalid", None
    vehicles = session.execute(delete(Vehicle).where(Vehicle.user_id == user.id))
    session.execute(
        update(Booking)
        .where(Booking.user_id == user.id)
        .values(plate=BLANK_PLATE)
        .execution_options(synchronize_session=False)
    )
    events = _blank_gate_events(session, booking_ids)
    _scrub_history(session, user.id, booking_ids)
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.user_id == user.id))
    _drop_unsent_emails(session, old_email)
    revoke_user_tokens(session, user.id)
    log_event(session, "customer.erased", now, lot_id=None, erased_user_id=user.id)
    return Erased(len(booking_ids), int(vehicles.rowcount), events)  # type: ignore[attr-defined]


def _blank_gate_events(session: Session, booking_ids: list[str]) -> int:
    if not booking_ids:
        return 0
    rows = session.scalars(
        select(GateEventRecord).where(GateEventRecord.reservation_id.in_(booking_ids))
    ).all()
    for row in rows:
        row.plate = None
        row.payload = scrub_plates(dict(row.payload))
    return len(rows)


def _scrub_history(session: Session, user_id: int, booking_ids: list[str]) -> None:
    about = EventLog.user_id == user_id
    if booking_ids:
        about = or_(about, EventLog.booking_id.in_(booking_ids))
    for row in session.scalars(select(EventLog).where(about)):
        row.payload = scrub_plates(dict(row.payload))


def _drop_unsent_emails(session: Session, email: str) -> None:
    unsent = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.kind == EMAIL_KIND, OutboxMessage.sent_at.is_(None)
        )
    )
    for message in unsent:
        if message.payload.get("to") == email:
            session.delete(message)
