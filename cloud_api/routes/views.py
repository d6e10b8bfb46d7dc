"""Model → response conversions shared by the routes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import Booking, Payment, Space
from cloud_api.schemas import BookingOut, PaymentInstructions

__all__ = ["booking_out"]


def _instructions(session: Session, booking: Booking) -> PaymentInstructions:
    if booking.status == "pending":
        payment_id = session.scalar(
            select(Payment.id)
            .where(Payment.booking_id == booking.id, Payment.kind == "charge")
            .order_by(Payment.id)
        )
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
    label = session.scalar(select(Space.label).where(Space.id == booking.space_id))
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
        payment=_instructions(session, booking),
    )
