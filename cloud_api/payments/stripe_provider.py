"""Stripe adapter on the official SDK (Checkout Sessions, PaymentIntents, Refunds, webhook
verification).

A customer pays through a hosted Checkout Session (:meth:`StripeProvider.create_checkout`); its
``metadata`` and its PaymentIntent's carry our ``payment_id``, so every event about it finds its
``payments`` row.

The composition root builds a :class:`stripe.StripeClient` (API key from settings, never from
source) and passes it in; tests point the client's ``api`` base address at a local fake server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import stripe
from stripe._base_address import BaseAddresses
from stripe.params import PaymentIntentCreateParams
from stripe.params.checkout import SessionCreateParams

from cloud_api.payments.provider import (
    Checkout,
    CheckoutRequest,
    PaymentIntent,
    PaymentRejected,
    ProviderUnavailable,
    Refund,
)
from cloud_api.payments.signature import (
    DEFAULT_TOLERANCE,
    InvalidSignature,
    verify_signature,
)

__all__ = ["HttpxStripeHTTPClient", "StripeProvider", "build_stripe_client"]

log = logging.getLogger(__name__)


class HttpxStripeHTTPClient(stripe.HTTPClient):
    """The SDK's sync transport on a caller-supplied ``httpx.Client`` (the transport seam).

    The SDK's own ``HTTPXClient`` passes the form body as ``data=<str>``, which httpx 0.28
    deprecates; this one sends it as ``content=``.
    """

    name = "parkgate-httpx"

    def __init__(self, client: httpx.Client) -> None:
        super().__init__()
        self._http = client

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        try:
            response = self._http.request(
                method, url, headers=dict(headers or {}), content=post_data or None
            )
        except httpx.HTTPError as exc:
            raise stripe.APIConnectionError(
                f"network error talking to Stripe: {exc!r}", should_retry=True
            ) from exc
        return response.text, response.status_code, response.headers

    def close(self) -> None:
        self._http.close()


def build_stripe_client(
    api_key: str,
    *,
    api_base: str | None = None,
    http_client: stripe.HTTPClient | None = None,
    max_network_retries: int = 2,
) -> stripe.StripeClient:
    """A StripeClient; ``api_base`` and ``http_client`` exist for tests and stripe-mock."""
    base_addresses: BaseAddresses = {}
    if api_base is not None:
        base_addresses["api"] = api_base
    return stripe.StripeClient(
        api_key,
        base_addresses=base_addresses,
        http_client=http_client,
        max_network_retries=max_network_retries,
    )


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        webhook_secret: str,
        tolerance: int = DEFAULT_TOLERANCE,
    ) -> None:
        self._client = client
        self._webhook_secret = webhook_secret
        self._tolerance = tolerance

    def _create_intent(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
        purpose: str,
    ) -> PaymentIntent:
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "metadata": {**metadata, "booking_id": booking_id, "purpose": purpose},
            "automatic_payment_methods": {"enabled": True},
        }
        with _translated_errors():
            intent = self._client.v1.payment_intents.create(
                params, {"idempotency_key": idempotency_key}
            )
        log.info("stripe payment intent %s for booking %s (%s)", intent.id, booking_id, purpose)
        return PaymentIntent(
            provider_ref=intent.id,
            status=intent.status,
            client_instructions={
                "provider": self.name,
                "payment_intent": intent.id,
                "client_secret": intent.client_secret,
            },
        )

    def create_payment(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> PaymentIntent:
        return self._create_intent(
            booking_id=booking_id,
            amount=amount,
            currency=currency,
            metadata=metadata,
            idempotency_key=idempotency_key,
            purpose="booking",
        )

    def charge_overstay(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> PaymentIntent:
        return self._create_intent(
            booking_id=booking_id,
            amount=amount,
            currency=currency,
            metadata=metadata,
            idempotency_key=idempotency_key,
            purpose="overstay",
        )

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        metadata = {**request.metadata, "payment_id": str(request.payment_id)}
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": request.amount,
                        "product_data": {"name": request.description},
                    },
                }
            ],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "client_reference_id": str(request.payment_id),
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        with _translated_errors():
            session = self._client.v1.checkout.sessions.create(
                params, {"idempotency_key": request.idempotency_key}
            )
        log.info("stripe checkout %s for payment %s", session.id, request.payment_id)
        intent = session.payment_intent
        return Checkout(
            ref=session.id,
            url=session.url,
            payment_ref=intent if isinstance(intent, str) or intent is None else intent.id,
        )

    def refund(
        self,
        provider_ref: str,
        *,
        amount: int,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Refund:
        with _translated_errors():
            refund = self._client.v1.refunds.create(
                {
                    "payment_intent": provider_ref,
                    "amount": amount,
                    "metadata": dict(metadata or {}),
                },
                {"idempotency_key": idempotency_key},
            )
        log.info("stripe refund %s of %s on %s", refund.id, amount, provider_ref)
        return Refund(
            provider_ref=refund.id,
            payment_ref=provider_ref,
            amount=refund.amount,
            status=refund.status or "pending",
        )

    def verify_webhook(
        self, payload: bytes, signature: str | None, *, now: float | None = None
    ) -> dict[str, Any]:
        # our own check first: it tells a stale timestamp from a bad signature
        verify_signature(
            payload, signature, self._webhook_secret, tolerance=self._tolerance, now=now
        )
        if now is None:
            try:
                event = self._client.construct_event(
                    payload, signature, self._webhook_secret, tolerance=self._tolerance
                )
            except stripe.SignatureVerificationError as exc:
                raise InvalidSignature(str(exc)) from exc
            return event.to_dict()
        body = json.loads(payload)
        if not isinstance(body, dict):
            raise ValueError("webhook body is not a JSON object")
        return body


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Map the SDK's exceptions onto :mod:`cloud_api.payments.provider` errors."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise ProviderUnavailable(str(exc)) from exc
    except stripe.StripeError as exc:
        status = exc.http_status or 0
        if status >= 500 or status == 409:
            raise ProviderUnavailable(str(exc)) from exc
        raise PaymentRejected(str(exc)) from exc
