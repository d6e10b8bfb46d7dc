"""Outbox handlers for payments: the worker, never a request, talks to the provider.

The booking core (``cloud_api.bookings.request_payment``, ``cloud_api.visits.record_exit``) writes a
``payments`` row and an outbox message in the request's transaction:

- ``payment.create`` ``{payment_id, ...}`` — opens the payment's checkout
  (:func:`cloud_api.payments.checkout.open_checkout`) unless the request that created the
  payment, or its pay page, already did; any payment kind;
- ``payment.refund`` ``{payment_id, ..., refund_of, charge_ref?}`` — early-exit credit,
  cancellation, late or duplicate payment, refunded against the payment it refunds
  (``refund_of``: its captured PaymentIntent, or ``charge_ref``); older rows without
  ``refund_of`` against the booking's succeeded charge.

The provider gets an idempotency key (the checkout's, or the refund row's), so a retry after a
crash returns the same provider object instead of charging or refunding twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.models import Payment, PaymentKind
from cloud_api.outbox import Handler, OutboxItem, PermanentError, RetryableError
from cloud_api.payments.checkout import PayLinks, open_checkout
from cloud_api.payments.provider import PaymentProvider, PaymentRejected

__all__ = ["RetryLater", "payment_handlers"]

log = logging.getLogger(__name__)


class RetryLater(RetryableError):
    """Not possible yet (e.g. the charge to refund has not succeeded); the worker retries."""


@dataclass(frozen=True)
class _PaymentView:
    id: int
    booking_id: str | None
    refund_of: int | None
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
        payment.booking_id,
        payment.refund_of,
        payment.amount_cents,
        payment.currency,
        payment.kind,
        payment.idempotency_key,
        payment.provider_ref,
    )


def _create(
    provider: PaymentProvider, links: PayLinks, sessions: sessionmaker[Session], item: OutboxItem
) -> None:
    state = open_checkout(sessions, provider, links, int(item.payload["payment_id"]))
    log.info("payment %s (%s) has its checkout: %s", state.id, state.kind, state.status)


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


def _refunded_ref(session: Session, view: _PaymentView, item: OutboxItem) -> str:
    """The provider payment to refund: the duplicate named in the message, the captured
    PaymentIntent of the refunded payment, or (older rows) the booking's succeeded charge."""
    named = item.payload.get("charge_ref")
    if isinstance(named, str):
        return named
    if view.refund_of is not None:
        charge = session.get_one(Payment, view.refund_of)
        if charge.provider_ref is None:
            raise RetryLater(f"payment {charge.id} has no captured provider payment yet")
        return charge.provider_ref
    if view.booking_id is None:
        raise LookupError(f"refund {view.id} names no payment to refund")
    return _charge_to_refund(session, view.booking_id, view.amount)


def _refund(
    provider: PaymentProvider, _links: PayLinks, sessions: sessionmaker[Session], item: OutboxItem
) -> None:
    with sessions() as session:
        view = _load(session, item)
        charge_ref = None if view.provider_ref else _refunded_ref(session, view, item)
    if charge_ref is None:
        return
    refund = provider.refund(
        charge_ref,
        amount=view.amount,
        idempotency_key=view.idempotency_key,
        metadata={"payment_id": str(view.id), "booking_id": view.booking_id or ""},
    )
    with sessions.begin() as session:
        payment = session.get_one(Payment, view.id, with_for_update=True)
        payment.provider = provider.name
        payment.provider_ref = refund.provider_ref
        if payment.status != "refunded":  # the charge.refunded webhook may have come first
            payment.status = "refunded" if refund.status == "succeeded" else "refund_pending"
    log.info("refund %s of %s on %s", refund.provider_ref, view.amount, charge_ref)


def _rejection_is_permanent(
    step: Callable[[PaymentProvider, PayLinks, sessionmaker[Session], OutboxItem], None],
    provider: PaymentProvider,
    links: PayLinks,
) -> Handler:
    """``step`` as an outbox handler: a rejection by the provider is a permanent failure."""

    def handle(sessions: sessionmaker[Session], item: OutboxItem) -> None:
        try:
            step(provider, links, sessions, item)
        except PaymentRejected as exc:
            raise PermanentError(f"{type(exc).__name__}: {exc}") from exc

    return handle


def payment_handlers(provider: PaymentProvider, links: PayLinks) -> dict[str, Handler]:
    """``{outbox kind: handler}`` for :class:`cloud_api.outbox.OutboxWorker`.

    ``ProviderUnavailable`` is a ``ConnectionError`` (the worker retries it); a rejection by the
    provider becomes a :class:`~cloud_api.outbox.PermanentError` (dead-lettered at once).
    """
    return {
        "payment.create": _rejection_is_permanent(_create, provider, links),
        "payment.refund": _rejection_is_permanent(_refund, provider, links),
    }
