"""Payments: the provider protocol, the Stripe and local providers, the webhook signature scheme,
and the early-exit refund / overstay settlement that runs through the outbox."""

from cloud_api.payments.local_provider import InProcessTransport, LocalPayment, LocalProvider
from cloud_api.payments.provider import (
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
from cloud_api.payments.stripe_provider import (
    HttpxStripeHTTPClient,
    StripeProvider,
    build_stripe_client,
)

__all__ = [
    "SIGNATURE_HEADER",
    "HttpxStripeHTTPClient",
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
    "StripeProvider",
    "WebhookSignatureError",
    "build_stripe_client",
    "idempotency_key",
    "signature_header",
    "verify_signature",
]
