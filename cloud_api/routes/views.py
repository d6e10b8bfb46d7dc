"""Model → response conversions shared by the routes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import Booking, Payment, PaymentKind, Space
from cloud_api.payments.checkout import PAYABLE, PayLinks, PaymentState, payment_state
from cloud_api.schemas import BookingOut, PaymentInstructions

__all__ = ["booking_out", "booking_view", "payment_due", "payment_instructions"]


def payment_instructions(state: PaymentState, pay_by: datetime | None) -> PaymentInstructions:
    """What to pay for ``state`` and where."""
    if state.problem:
        how = "the payment provider cannot be reached now; open pay_url to pay shortly"
    else:
        how = "open pay_url (or checkout_url) and pay"
    if pay_by is not None:
        how += "; unpaid holds expire at pay_by"
    return PaymentInstructions(
        status="awaiting_payment",
        amount_cents=state.amount_cents,
        currency=state.currency,
        pay_by=pay_by,
        payment_id=state.id,
        kind=state.kind,
        pay_url=state.pay_url,
        checkout_url=state.checkout_url,
        client_secret=state.client_secret,
        problem=state.problem,
        how=how,
    )


def _instructions(booking: Booking, due: PaymentState | None) -> PaymentInstructions:
    if due is not None:
        return payment_instructions(due, booking.hold_expires_at)
    if booking.price_cents == 0:
        status, how = "not_required", "free booking"
    else:
        status, how = "paid", "nothing to do"
    return PaymentInstructions(
        status=status,
        amount_cents=booking.price_cents,
        currency=booking.currency,
        pay_by=None,
        how=how,
    )


def payment_due(session: Session, booking_id: str) -> Payment | None:
    """The booking's oldest payment still to be paid (its price, an extension, an overstay)."""
    return session.scalars(
        select(Payment)
        .where(
            Payment.booking_id == booking_id,
            Payment.kind != PaymentKind.REFUND.value,
            Payment.status.in_(sorted(PAYABLE)),
        )
        .order_by(Payment.id)
    ).first()


def booking_out(session: Session, booking: Booking, links: PayLinks) -> BookingOut:
    """The answer for ``booking``, reading its space label and the payment it awaits."""
    label = session.scalar(select(Space.label).where(Space.id == booking.space_id))
    due = payment_due(session, booking.id)
    return booking_view(booking, label, payment_state(due, links) if due else None)


def booking_view(booking: Booking, label: str | None, due: PaymentState | None) -> BookingOut:
    """The answer for ``booking`` when its space label and awaited payment are known."""
    return BookingOut(
        booking_id=booking.id,
        parking_lot_id=booking.lot_id,
        space_id=booking.space_id,
        space_label=label,
        vehicle_plate=booking.plate,
        vehicle_type=booking.vehicle_type,
        start_time=booking.start_time,
        end_time=booking.end_time,
        status=booking.status,
        price=booking.price_cents,
        currency=booking.currency,
        amount_owed_cents=booking.amount_owed_cents,
        refunded_cents=booking.refunded_cents,
        hold_expires_at=booking.hold_expires_at,
        arrived_at=booking.arrived_at,
        exited_at=booking.exited_at,
        created_at=booking.created_at,
        payment=_instructions(booking, due),
    )
