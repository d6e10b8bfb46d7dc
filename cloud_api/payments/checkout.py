"""Where a customer pays one ``payments`` row: its pay page and its provider checkout.

Every payment the customer owes (a booking's price, an extension, an overstay, a stay paid by
plate: any ``kind``, with or without a booking behind it) has a pay page at
``{public_url}/pay/{public_id}``. ``public_id`` is 128 random bits stored on the row, so the
address is the capability: no login, nothing to sign, nothing to rotate, and it can go in an
email or a QR code at the exit.

:func:`open_checkout` asks the provider for a checkout once the payment's row is committed: in
the request that created it (``POST /bookings``, an extension), again by the outbox worker's
``payment.create`` if that failed, and on demand by the pay page. The provider's idempotency key
is the payment id and the number of its checkouts that expired, so racing callers get the
same checkout and an expired one is replaced by a new one.

:func:`reopen_checkout` asks again for the checkout a payment already has, with the same key: a
provider that forgot it (the local provider keeps payments in memory, so after a restart) opens
the same one again, under the same reference; any other answer is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.models import Payment, PaymentKind, utcnow
from cloud_api.payments.provider import (
    CheckoutRequest,
    PaymentError,
    PaymentProvider,
    ProviderUnavailable,
)

__all__ = [
    "PAYABLE",
    "PayLinks",
    "PaymentState",
    "describe",
    "find_by_public_id",
    "open_checkout",
    "payment_state",
    "reopen_checkout",
    "try_open_checkout",
]

log = logging.getLogger(__name__)

PAYABLE = frozenset({"requires_payment", "failed"})  # a customer can (still, again) pay these
_DESCRIPTIONS = {
    PaymentKind.CHARGE.value: "Parking booking",
    PaymentKind.EXTENSION.value: "Booking extension",
    PaymentKind.OVERSTAY.value: "Overstay",
    PaymentKind.STAY.value: "Parking (pay by plate)",
}


@dataclass(frozen=True)
class PayLinks:
    """The pay pages' addresses under the public URL (``Settings.public_url``)."""

    base_url: str

    def pay(self, public_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/pay/{public_id}"

    def result(self, public_id: str) -> str:
        return f"{self.pay(public_id)}/result"


@dataclass(frozen=True)
class PaymentState:
    """What a customer needs to know about one payment, and where to pay it."""

    id: int
    public_id: str
    kind: str
    status: str
    amount_cents: int
    currency: str
    booking_id: str | None
    pay_url: str
    checkout_url: str | None
    client_secret: str | None = None  # not kept: hosted checkouts need none
    problem: str | None = None  # why no checkout could be opened just now

    @property
    def payable(self) -> bool:
        return self.status in PAYABLE


def describe(kind: str, booking_id: str | None) -> str:
    """The line the customer sees on the provider's page."""
    what = _DESCRIPTIONS.get(kind, f"Parking ({kind})")
    return f"{what} {booking_id}" if booking_id else what


def payment_state(payment: Payment, links: PayLinks) -> PaymentState:
    booking_id: str | None = payment.booking_id
    return PaymentState(
        id=payment.id,
        public_id=payment.public_id,
        kind=payment.kind,
        status=payment.status,
        amount_cents=payment.amount_cents,
        currency=payment.currency,
        booking_id=booking_id,
        pay_url=links.pay(payment.public_id),
        checkout_url=payment.checkout_url,
    )


def find_by_public_id(session: Session, public_id: str) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.public_id == public_id)).first()


def _request(payment: Payment, links: PayLinks) -> CheckoutRequest:
    metadata = {"payment_id": str(payment.id), "kind": payment.kind}
    booking_id: str | None = payment.booking_id
    if booking_id:
        metadata["booking_id"] = booking_id
    return CheckoutRequest(
        payment_id=payment.id,
        amount=payment.amount_cents,
        currency=payment.currency,
        description=describe(payment.kind, booking_id),
        metadata=metadata,
        idempotency_key=f"parkgate-checkout-{payment.id}-{payment.checkouts}",
        success_url=links.result(payment.public_id),
        cancel_url=links.pay(payment.public_id),
    )


def open_checkout(
    sessions: sessionmaker[Session], provider: PaymentProvider, links: PayLinks, payment_id: int
) -> PaymentState:
    """The payment, with a checkout opened for it if it is payable and has none.

    The provider is called outside any transaction. Raises ``LookupError`` for an unknown
    payment and :class:`~cloud_api.payments.provider.PaymentError` when the provider fails.
    """
    with sessions() as session:
        payment = session.get(Payment, payment_id)
        if payment is None:
            raise LookupError(f"payment {payment_id} not found")
        state = payment_state(payment, links)
        if not state.payable or payment.checkout_ref is not None or payment.amount_cents <= 0:
            return state
        request, expired = _request(payment, links), payment.checkouts
    checkout = provider.create_checkout(request)
    with sessions.begin() as session:
        payment = session.get_one(Payment, payment_id, with_for_update=True)
        if payment.checkout_ref is None and payment.checkouts == expired:
            payment.checkout_ref, payment.checkout_url = checkout.ref, checkout.url
            payment.provider = provider.name
            payment.provider_ref = payment.provider_ref or checkout.payment_ref
            payment.updated_at = utcnow()
        return payment_state(payment, links)


def try_open_checkout(
    sessions: sessionmaker[Session], provider: PaymentProvider, links: PayLinks, payment_id: int
) -> PaymentState:
    """:func:`open_checkout` for a request path: a provider failure leaves the payment as it is
    (the booking stands, held) and the state says why; the pay page tries again later."""
    try:
        return open_checkout(sessions, provider, links, payment_id)
    except PaymentError as exc:
        unreachable = isinstance(exc, ProviderUnavailable)
        log.warning("no checkout for payment %s yet: %s", payment_id, exc)
        with sessions() as session:
            state = payment_state(session.get_one(Payment, payment_id), links)
        problem = "provider_unavailable" if unreachable else "provider_refused"
        return replace(state, problem=problem)


def reopen_checkout(
    sessions: sessionmaker[Session], provider: PaymentProvider, links: PayLinks, payment_id: int
) -> PaymentState:
    """The payable payment's checkout asked for again with its own idempotency key, so a provider
    that no longer knows it opens the same one (same reference) again. Nothing is written; a
    provider failure, or an answer with another reference, leaves the state with a ``problem``."""
    with sessions() as session:
        payment = session.get(Payment, payment_id)
        if payment is None:
            raise LookupError(f"payment {payment_id} not found")
        state = payment_state(payment, links)
        if not state.payable or payment.checkout_ref is None or payment.amount_cents <= 0:
            return state
        request, known = _request(payment, links), payment.checkout_ref
    try:
        checkout = provider.create_checkout(request)
    except PaymentError as exc:
        log.warning("checkout of payment %s not re-opened: %s", payment_id, exc)
        unreachable = isinstance(exc, ProviderUnavailable)
        return replace(state, problem="provider_unavailable" if unreachable else "provider_refused")
    if checkout.ref != known:  # not the checkout this payment has: never pay into another
        log.error("payment %s: re-opened checkout %s is not %s", payment_id, checkout.ref, known)
        return replace(state, problem="checkout_mismatch")
    return state
