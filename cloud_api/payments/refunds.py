"""Refunds that never exceed what was captured.

A refund is a ``payments`` row of kind ``refund`` pointing at the payment it gives money back
from (``refund_of``) and an outbox ``payment.refund`` message; the worker refunds it against that
payment's captured PaymentIntent (or ``charge_ref``, for a duplicate capture). Requesting one
reserves the amount on the charge (``refunded_cents``) in the same transaction, so every request
is capped at ``captured_cents - refunded_cents`` whatever runs concurrently (the charge row is
locked).
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api import outbox
from cloud_api.models import Payment, PaymentKind

__all__ = ["refund_booking", "refund_payment", "refundable"]

log = logging.getLogger(__name__)


def refundable(payment: Payment) -> int:
    """What can still be given back from ``payment``."""
    return max(0, payment.captured_cents - payment.refunded_cents)


def refund_payment(
    session: Session,
    charge: Payment,
    amount: int,
    key: str,
    *,
    charge_ref: str | None = None,
    whole: bool = False,
) -> Payment | None:
    """Refund up to ``amount`` of ``charge`` (capped at what it captured and has not refunded);
    the refund row, or None when nothing is left to refund. ``charge_ref`` names another
    provider payment to refund (a duplicate capture, outside ``captured_cents``): ``whole``
    then skips the cap, the duplicate is refunded in full."""
    granted = amount if whole else min(amount, refundable(charge))
    if granted <= 0:
        return None
    if not whole:
        charge.refunded_cents += granted
    refund = Payment(
        booking_id=charge.booking_id,
        stay_id=charge.stay_id,
        amount_cents=granted,
        currency=charge.currency,
        status="pending",
        provider="pending",
        kind=PaymentKind.REFUND.value,
        idempotency_key=key,
        refund_of=charge.id,
    )
    session.add(refund)
    session.flush()
    payload: dict[str, object] = {
        "payment_id": refund.id,
        "booking_id": charge.booking_id,
        "amount_cents": granted,
        "currency": charge.currency,
        "kind": PaymentKind.REFUND.value,
        "idempotency_key": key,
        "refund_of": charge.id,
    }
    if charge_ref is not None:
        payload["charge_ref"] = charge_ref
    outbox.enqueue(session, "payment.refund", payload)
    if granted < amount:
        log.warning("refund of %s on payment %s capped at %s", amount, charge.id, granted)
    return refund


def refund_booking(session: Session, booking_id: str, amount: int, tag: str) -> int:
    """Refund up to ``amount`` of what the booking's payments captured, oldest first; returns
    the amount granted (less than asked when less is left to refund)."""
    charges = session.scalars(
        select(Payment)
        .where(
            Payment.booking_id == booking_id,
            Payment.kind != PaymentKind.REFUND.value,
            Payment.captured_cents > Payment.refunded_cents,
        )
        .order_by(Payment.id)
        .with_for_update()
    ).all()
    left = amount
    for index, charge in enumerate(charges):
        suffix = "" if index == 0 else f":p{charge.id}"
        refund = refund_payment(session, charge, left, f"{booking_id}:refund:{tag}{suffix}")
        left -= refund.amount_cents if refund else 0
        if left <= 0:
            break
    return amount - left
