"""A provider for the demo and tests that behaves like Stripe without a network.

It records payments in memory, "completes" them on request and delivers Stripe-format events
(``payment_intent.succeeded``, ``payment_intent.payment_failed``, ``charge.refunded``) signed with
Stripe's scheme to the webhook URL through an ``httpx.Client`` — the seam: tests and the
in-process demo pass ``httpx.Client(transport=InProcessTransport(app), base_url=...)``.

Failures are forced with :meth:`LocalProvider.decline_next` (the next completions fail) and
:meth:`LocalProvider.fail_calls` (the next API calls raise :class:`ProviderUnavailable`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

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
    SIGNATURE_HEADER,
    signature_header,
    verify_signature,
)

__all__ = ["InProcessTransport", "LocalPayment", "LocalProvider"]

log = logging.getLogger(__name__)


AUTOPAY_ATTEMPTS = 8
# A stay paid by plate is paid by whoever stands at the exit (the pay page's button), never by
# the demo's autopaying customer: that customer books, extends and overstays.
NOT_AUTOPAID = frozenset({"stay"})


def _ref(prefix: str, key: str) -> str:
    """Deterministic object id from an idempotency key, so retries return the same object."""
    return f"{prefix}_local_{hashlib.sha256(key.encode()).hexdigest()[:20]}"


@dataclass
class LocalPayment:
    provider_ref: str
    booking_id: str
    amount: int
    currency: str
    metadata: dict[str, str]
    status: str = "requires_payment_method"
    refunded: int = 0
    refunds: list[Refund] = field(default_factory=list)


class LocalProvider:
    name = "local"

    def __init__(
        self,
        *,
        webhook_secret: str,
        webhook_url: str,
        http_client: httpx.Client | None = None,
        tolerance: int = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
        autopay_seconds: float | None = None,
    ) -> None:
        self._secret = webhook_secret
        # The demo's customer: pays every new payment (but a stay's, NOT_AUTOPAID) this long
        # after it is created (None: only when told to with complete()). Delivery is retried like
        # Stripe retries webhooks.
        self.autopay_seconds = autopay_seconds
        self.webhook_url = webhook_url
        self._http = http_client
        self._tolerance = tolerance
        self._clock = clock
        self._lock = threading.Lock()
        self.payments: dict[str, LocalPayment] = {}
        self._declines = 0
        self._unavailable = 0

    # -- test and demo controls ----------------------------------------------------------------
    def use_http_client(self, client: httpx.Client) -> None:
        """Deliver webhooks through ``client`` (e.g. one on :class:`InProcessTransport`)."""
        self._http = client

    def decline_next(self, count: int = 1) -> None:
        """The next ``count`` completions send ``payment_intent.payment_failed``."""
        self._declines += count

    def fail_calls(self, count: int = 1) -> None:
        """The next ``count`` API calls raise :class:`ProviderUnavailable`."""
        self._unavailable += count

    def _maybe_unavailable(self) -> None:
        if self._unavailable > 0:
            self._unavailable -= 1
            raise ProviderUnavailable("local provider forced unavailable")

    # -- PaymentProvider --------------------------------------------------------------------------
    def _create(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
        purpose: str,
    ) -> PaymentIntent:
        self._maybe_unavailable()
        if amount <= 0:
            raise PaymentRejected(f"amount must be positive, got {amount}")
        ref = _ref("pi", idempotency_key)
        with self._lock:
            payment = self.payments.get(ref)
            if payment is None:
                meta = {**metadata, "booking_id": booking_id, "purpose": purpose}
                payment = LocalPayment(ref, booking_id, amount, currency.lower(), meta)
                self.payments[ref] = payment
                if self.autopay_seconds is not None and purpose not in NOT_AUTOPAID:
                    self._schedule_autopay(ref, self.autopay_seconds, attempt=1)
        return PaymentIntent(
            provider_ref=ref,
            status=payment.status,
            client_instructions={
                "provider": self.name,
                "payment_intent": ref,
                "client_secret": f"{ref}_secret",
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
        return self._create(
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
        return self._create(
            booking_id=booking_id,
            amount=amount,
            currency=currency,
            metadata=metadata,
            idempotency_key=idempotency_key,
            purpose="overstay",
        )

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """The payment the pay page's button completes (:meth:`complete`); no hosted page."""
        metadata = {**request.metadata, "payment_id": str(request.payment_id)}
        intent = self._create(
            booking_id=metadata.get("booking_id", ""),
            amount=request.amount,
            currency=request.currency,
            metadata=metadata,
            idempotency_key=request.idempotency_key,
            purpose=metadata.get("kind", "payment"),
        )
        ref = intent.provider_ref
        return Checkout(ref=ref, url=None, payment_ref=ref, client_secret=f"{ref}_secret")

    def refund(
        self,
        provider_ref: str,
        *,
        amount: int,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Refund:
        self._maybe_unavailable()
        ref = _ref("re", idempotency_key)
        with self._lock:
            payment = self.payments.get(provider_ref)
            if payment is not None:
                known = next((r for r in payment.refunds if r.provider_ref == ref), None)
                if known is not None:
                    return known
                if payment.refunded + amount > payment.amount:
                    raise PaymentRejected(f"refund of {amount} exceeds what {provider_ref} took")
            refund = Refund(ref, provider_ref, amount, "succeeded")
            if payment is not None:
                payment.refunded += amount
                payment.refunds.append(refund)
        try:
            self.deliver(self._refund_event(refund, payment, dict(metadata or {})))
        except httpx.HTTPError as exc:  # the refund stands; like Stripe, delivery is best effort
            log.warning("could not deliver charge.refunded for %s: %s", ref, exc)
        return refund

    def verify_webhook(
        self, payload: bytes, signature: str | None, *, now: float | None = None
    ) -> dict[str, Any]:
        verify_signature(payload, signature, self._secret, tolerance=self._tolerance, now=now)
        body = json.loads(payload)
        if not isinstance(body, dict):
            raise ValueError("webhook body is not a JSON object")
        return body

    # -- completing payments and delivering events ------------------------------------------------
    def complete(self, provider_ref: str, *, succeed: bool | None = None) -> httpx.Response:
        """Settle a payment as the customer would and deliver the resulting webhook."""
        with self._lock:
            payment = self.payments[provider_ref]
            if succeed is None:
                succeed = self._declines == 0
                if not succeed:
                    self._declines -= 1
            payment.status = "succeeded" if succeed else "requires_payment_method"
        kind = "payment_intent.succeeded" if succeed else "payment_intent.payment_failed"
        return self.deliver(self.event(kind, self._intent_object(payment)))

    def _schedule_autopay(self, ref: str, delay: float, *, attempt: int) -> None:
        timer = threading.Timer(delay, self._autopay, args=(ref, attempt))
        timer.daemon = True
        timer.start()

    def _autopay(self, ref: str, attempt: int) -> None:
        try:
            response = self.complete(ref)
            delivered = response.status_code < 500
        except httpx.HTTPError as exc:
            log.warning("autopay %s: webhook delivery failed (%s)", ref, exc)
            delivered = False
        if not delivered and attempt < AUTOPAY_ATTEMPTS:
            delay = min(max(self.autopay_seconds or 0.0, 0.05) * 2.0**attempt, 60.0)
            self._schedule_autopay(ref, delay, attempt=attempt + 1)

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "evt_local_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(self._clock()),
            "livemode": False,
            "type": kind,
            "data": {"object": obj},
        }

    def sign(self, payload: bytes, *, timestamp: int | None = None) -> str:
        ts = int(self._clock()) if timestamp is None else timestamp
        return signature_header(payload, self._secret, timestamp=ts)

    def deliver(self, event: Mapping[str, Any]) -> httpx.Response:
        """POST ``event`` to the webhook URL, signed now."""
        payload = json.dumps(event, separators=(",", ":")).encode()
        if self._http is None:
            self._http = httpx.Client(timeout=10)
        response = self._http.post(
            self.webhook_url,
            content=payload,
            headers={SIGNATURE_HEADER: self.sign(payload), "Content-Type": "application/json"},
        )
        log.info(
            "delivered %s %s: HTTP %s", event.get("type"), event.get("id"), response.status_code
        )
        return response

    @staticmethod
    def _intent_object(payment: LocalPayment) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": payment.provider_ref,
            "object": "payment_intent",
            "amount": payment.amount,
            "amount_received": payment.amount if payment.status == "succeeded" else 0,
            "currency": payment.currency,
            "status": payment.status,
            "metadata": dict(payment.metadata),
        }
        if payment.status != "succeeded":
            obj["last_payment_error"] = {"code": "card_declined", "message": "declined (local)"}
        return obj

    def _refund_event(
        self, refund: Refund, payment: LocalPayment | None, refund_metadata: dict[str, str]
    ) -> dict[str, Any]:
        metadata = dict(payment.metadata) if payment else {}
        charge = {
            "id": "ch" + refund.payment_ref.removeprefix("pi"),
            "object": "charge",
            "payment_intent": refund.payment_ref,
            "amount": payment.amount if payment else refund.amount,
            "amount_refunded": payment.refunded if payment else refund.amount,
            "currency": payment.currency if payment else "eur",
            "refunded": bool(payment and payment.refunded >= payment.amount),
            "metadata": metadata,
            "refunds": {
                "object": "list",
                "data": [
                    {"id": refund.provider_ref, "amount": refund.amount, "status": "succeeded"}
                ],
            },
        }
        return self.event("charge.refunded", charge)


class InProcessTransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI app in-process (demo and tests).

    httpx's own ``ASGITransport`` is async-only; this runs it on a private event loop per request
    so the sync :class:`LocalProvider` can deliver webhooks to the app without a socket.
    """

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> httpx.Response:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._asgi.handle_async_request(forwarded)
            content = await response.aread()
            await response.aclose()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return asyncio.run(call())
