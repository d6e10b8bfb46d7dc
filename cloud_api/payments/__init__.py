"""Payments: the provider protocol, the local provider, the webhook signature scheme, and the
early-exit refund / overstay settlement that runs through the outbox.

The Stripe adapter is imported by name (``cloud_api.payments.stripe_provider``) and only where
Stripe is configured, so no other process loads the Stripe SDK."""

from cloud_api.payments.local_provider import InProcessTransport, LocalPayment, LocalProvider
from cloud_api.payments.provider import (
    Checkout,
    CheckoutRequest,
    PaymentError,
    PaymentIntent,
    PaymentProvider,
    PaymentRejected,
    ProviderUnavailable,
    Refund,
    idempotency_key,
)
from cloud_api.payments.signature import (
    SIGNATURE_HEADER,
    InvalidSignature,
    StaleSignature,
    WebhookSignatureError,
    signature_header,
    verify_signature,
)

__all__ = [
    "SIGNATURE_HEADER",
    "Checkout",
    "CheckoutRequest",
    "InProcessTransport",
    "InvalidSignature",
    "LocalPayment",
    "LocalProvider",
    "PaymentError",
    "PaymentIntent",
    "PaymentProvider",
    "PaymentRejected",
    "ProviderUnavailable",
    "Refund",
    "StaleSignature",
    "WebhookSignatureError",
    "idempotency_key",
    "signature_header",
    "verify_signature",
]
