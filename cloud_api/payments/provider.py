"""The payment provider protocol and its value types and errors.

Errors::

    PaymentError
    ├── ProviderUnavailable (also ConnectionError) — the network or the provider failed; retry
    └── PaymentRejected — the provider said no (declined, invalid request); do not retry

Amounts are integers in the currency's minor unit (cents), as providers expect them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Checkout",
    "CheckoutRequest",
    "PaymentError",
    "PaymentIntent",
    "PaymentProvider",
    "PaymentRejected",
    "ProviderUnavailable",
    "Refund",
    "idempotency_key",
]


class PaymentError(Exception):
    """Root of every payment provider error."""


class ProviderUnavailable(PaymentError, ConnectionError):
    """The call may not have reached the provider; safe to retry with the same idempotency key."""


class PaymentRejected(PaymentError):
    """The provider answered and refused; retrying the same call will not help."""


@dataclass(frozen=True)
class PaymentIntent:
    """A payment the customer still has to complete, with what the client needs to do it."""

    provider_ref: str
    status: str
    client_instructions: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refund:
    provider_ref: str
    payment_ref: str
    amount: int
    status: str


@dataclass(frozen=True)
class CheckoutRequest:
    """What the customer pays for one ``payments`` row, and where the provider sends them back.

    ``metadata`` comes back in the provider's events (it carries our ``payment_id``)."""

    payment_id: int
    amount: int
    currency: str
    description: str
    metadata: Mapping[str, str]
    idempotency_key: str
    success_url: str
    cancel_url: str


@dataclass(frozen=True)
class Checkout:
    """A place the customer can pay: ``url`` a hosted page (Stripe Checkout) or None when the
    pay page itself takes the payment (local provider); ``payment_ref`` the provider's payment
    (PaymentIntent) when it exists already; ``client_secret`` for an embedded payment form."""

    ref: str
    url: str | None
    payment_ref: str | None
    client_secret: str | None = None


def idempotency_key(booking_id: str, kind: str) -> str:
    """Provider idempotency key for one side effect (``kind``) of one booking."""
    return f"parkgate-{kind}-{booking_id}"


@runtime_checkable
class PaymentProvider(Protocol):
    name: str

    def create_payment(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> PaymentIntent:
        """Start a payment for a booking; the booking is confirmed by the success webhook."""
        ...

    def refund(
        self,
        provider_ref: str,
        *,
        amount: int,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Refund:
        """Refund ``amount`` of the payment ``provider_ref``; ``metadata`` comes back in events."""
        ...

    def charge_overstay(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> PaymentIntent:
        """Start a payment for time parked past the booking's end plus grace."""
        ...

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Open a checkout for one payment; the same idempotency key returns the same one."""
        ...

    def verify_webhook(
        self, payload: bytes, signature: str | None, *, now: float | None = None
    ) -> dict[str, Any]:
        """Verify a webhook request and return the event as a plain dict.

        Raises :class:`cloud_api.payments.signature.WebhookSignatureError` when untrusted and
        ``ValueError`` when the signed body is not a JSON event.
        """
        ...
