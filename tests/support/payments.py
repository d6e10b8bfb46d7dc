"""Paying in tests the way the webhook does: the initial charge captured and applied."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import Payment
from cloud_api.payments.settlement import record_capture

__all__ = ["pay_booking"]


def pay_booking(session: Session, booking_id: str, now: datetime) -> str:
    """Capture the booking's initial charge in full (as ``payment_intent.succeeded`` would)."""
    charge = session.scalars(
        select(Payment).where(
            Payment.booking_id == booking_id, Payment.idempotency_key.endswith(":initial")
        )
    ).one()
    paid = (charge.amount_cents, charge.currency)
    return record_capture(session, charge, f"pi_test_{charge.id}", paid, now)
