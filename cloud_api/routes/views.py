"""Model → response conversions shared by the routes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import Booking, Payment, Space
from cloud_api.schemas import BookingOut, PaymentInstructions

__all__ = ["booking_out", "booking_view"]


def _instructions(booking: Booking, payment_id: int | None) -> PaymentInstructions:
    if booking.status == "pending":
        return PaymentInstructions(
            status="awaiting_payment",
            amount_cents=booking.price_cents,
            currency=booking.currency,
            pay_by=booking.hold_expires_at,
            payment_id=payment_id,
            how="pay before pay_by through the payment provider; unpaid holds expire",
        )
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


def booking_out(session: Session, booking: Booking) -> BookingOut:
    """The answer for ``booking``, reading its space label and pending charge's payment id."""
    label = session.scalar(select(Space.label).where(Space.id == booking.space_id))
    payment_id = None
    if booking.status == "pending":
        payment_id = session.scalar(
            select(Payment.id)
            .where(Payment.booking_id == booking.id, Payment.kind == "charge")
            .order_by(Payment.id)
        )
    return booking_view(booking, label, payment_id)


def booking_view(booking: Booking, label: str | None, payment_id: int | None) -> BookingOut:
    """The answer for ``booking`` when its space label and pending payment id are known."""
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
        payment=_instructions(booking, payment_id),
    )
