"""Outbox handlers for payments: the worker, never a request, talks to the provider.

The booking core (``cloud_api.bookings.request_payment``, ``cloud_api.visits.record_exit``) writes a
``payments`` row and an outbox message in the request's transaction:

- ``payment.create`` ``{payment_id, booking_id, amount_cents, currency, kind, idempotency_key}`` —
  ``kind`` ``charge`` creates the booking's payment, ``overstay`` the overstay charge;
- ``payment.refund`` ``{payment_id, booking_id, amount_cents, currency, kind, idempotency_key}`` —
  early-exit credit or cancellation, refunded against the booking's succeeded charge.

The handler sends the row's idempotency key (booking id + kind + tag) to the provider, so a retry
after a crash returns the same provider object instead of charging or refunding twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.models import Payment, PaymentKind
from cloud_api.outbox import Handler, OutboxItem, PermanentError, RetryableError
from cloud_api.payments.provider import PaymentProvider, PaymentRejected

__all__ = ["RetryLater", "payment_handlers"]

log = logging.getLogger(__name__)


class RetryLater(RetryableError):
    """Not possible yet (e.g. the charge to refund has not succeeded); the worker retries."""


@dataclass(frozen=True)
class _PaymentView:
    id: int
    booking_id: str
    amount: int
    currency: str
    kind: str
    idempotency_key: str
    provider_ref: str | None


def _load(session: Session, item: OutboxItem) -> _PaymentView:
    payment = session.get(Payment, item.payload["payment_id"])
    if payment is None:
        raise LookupError(f"payment {item.payload['payment_id']} not found")
    return _PaymentView(
        payment.id,
        payment.booking_id or "",  # "" for a stay's payment (kind "stay", no booking)
        payment.amount_cents,
        payment.currency,
        payment.kind,
        payment.idempotency_key,
        payment.provider_ref,
    )


def _create(provider: PaymentProvider, sessions: sessionmaker[Session], item: OutboxItem) -> None:
    with sessions() as session:
        view = _load(session, item)
    if view.provider_ref is not None:
        return  # created on an earlier attempt that got as far as recording it
    call = (
        provider.charge_overstay if view.kind == PaymentKind.OVERSTAY else provider.create_payment
    )
    intent = call(
        booking_id=view.booking_id,
        amount=view.amount,
        currency=view.currency,
        metadata={"payment_id": str(view.id), "kind": view.kind},
        idempotency_key=view.idempotency_key,
    )
    with sessions.begin() as session:
        payment = session.get_one(Payment, view.id, with_for_update=True)
        if payment.provider_ref is None:
            payment.provider = provider.name
            payment.provider_ref = intent.provider_ref
    log.info("payment %s for %s is %s", view.id, view.booking_id, intent.provider_ref)


def _charge_to_refund(session: Session, booking_id: str, amount: int) -> str:
    charges = session.execute(
        select(Payment.provider_ref, Payment.amount_cents)
        .where(
            Payment.booking_id == booking_id,
            Payment.kind == PaymentKind.CHARGE.value,
            Payment.status == "succeeded",
            Payment.provider_ref.is_not(None),
        )
        .order_by(Payment.id)
    ).all()
    for ref, charged in charges:
        if charged >= amount:
            return str(ref)
    if charges:
        return str(charges[0][0])
    raise RetryLater(f"booking {booking_id} has no succeeded charge to refund yet")


def _charge_of(session: Session, item: OutboxItem, booking_id: str, amount: int) -> str:
    """The capture to refund: the one the message names (``charge_payment_id``: a stay paid
    twice), else the booking's succeeded charge."""
    charge_id = item.payload.get("charge_payment_id")
    if charge_id is None:
        return _charge_to_refund(session, booking_id, amount)
    charge = session.get(Payment, charge_id)
    if charge is None or charge.provider_ref is None:
        raise RetryLater(f"payment {charge_id} has no provider reference yet")
    return charge.provider_ref


def _refund(provider: PaymentProvider, sessions: sessionmaker[Session], item: OutboxItem) -> None:
    with sessions() as session:
        view = _load(session, item)
        charge_ref = (
            None if view.provider_ref else _charge_of(session, item, view.booking_id, view.amount)
        )
    if charge_ref is None:
        return
    refund = provider.refund(
        charge_ref,
        amount=view.amount,
        idempotency_key=view.idempotency_key,
        metadata={"payment_id": str(view.id), "booking_id": view.booking_id},
    )
    with sessions.begin() as session:
        payment = session.get_one(Payment, view.id, with_for_update=True)
        payment.provider = provider.name
        payment.provider_ref = refund.provider_ref
        if payment.status != "refunded":  # the charge.refunded webhook may have come first
            payment.status = "refunded" if refund.status == "succeeded" else "refund_pending"
    log.info("refund %s of %s on %s", refund.provider_ref, view.amount, charge_ref)


def _rejection_is_permanent(
    step: Callable[[PaymentProvider, sessionmaker[Session], OutboxItem], None],
    provider: PaymentProvider,
) -> Handler:
    """``step`` as an outbox handler: a rejection by the provider is a permanent failure."""

    def handle(sessions: sessionmaker[Session], item: OutboxItem) -> None:
        try:
            step(provider, sessions, item)
        except PaymentRejected as exc:
            raise PermanentError(f"{type(exc).__name__}: {exc}") from exc

    return handle


def payment_handlers(provider: PaymentProvider) -> dict[str, Handler]:
    """``{outbox kind: handler}`` for :class:`cloud_api.outbox.OutboxWorker`.

    ``ProviderUnavailable`` is a ``ConnectionError`` (the worker retries it); a rejection by the
    provider becomes a :class:`~cloud_api.outbox.PermanentError` (dead-lettered at once).
    """
    return {
        "payment.create": _rejection_is_permanent(_create, provider),
        "payment.refund": _rejection_is_permanent(_refund, provider),
    }
