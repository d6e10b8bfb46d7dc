"""The demo's customer: the local provider pays new payments by itself and retries delivery."""

from __future__ import annotations

import json
import threading

import httpx

from cloud_api.payments.local_provider import LocalProvider
from cloud_api.payments.provider import CheckoutRequest
from cloud_api.payments.signature import SIGNATURE_HEADER, verify_signature
from devservices import wait_for

SECRET = "whsec_test_autopay"


def test_autopay_completes_and_retries_failed_delivery() -> None:
    deliveries: list[httpx.Request] = []
    lock = threading.Lock()

    def webhook(request: httpx.Request) -> httpx.Response:
        with lock:
            deliveries.append(request)
            first = len(deliveries) == 1
        return httpx.Response(503 if first else 200)  # the API was restarting the first time

    provider = LocalProvider(
        webhook_secret=SECRET,
        webhook_url="http://cloud.test/payments/webhook",
        http_client=httpx.Client(transport=httpx.MockTransport(webhook)),
        autopay_seconds=0.01,
    )
    intent = provider.create_payment(
        booking_id="bk_1", amount=450, currency="EUR", metadata={}, idempotency_key="k1"
    )
    wait_for(lambda: len(deliveries) >= 2, timeout=5, what="a retried delivery")
    for request in deliveries:
        verify_signature(request.content, request.headers[SIGNATURE_HEADER], SECRET)
        event = json.loads(request.content)
        assert event["type"] == "payment_intent.succeeded"
        assert event["data"]["object"]["id"] == intent.provider_ref
    assert provider.payments[intent.provider_ref].status == "succeeded"


def test_autopay_pays_bookings_but_never_a_stay_paid_by_plate() -> None:
    """The demo's customer pays what it books; a drive-up's stay is paid at the exit by whoever
    is there (the pay page's button), so autopay leaves it unpaid."""
    delivered: list[str] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        delivered.append(json.loads(request.content)["data"]["object"]["metadata"]["kind"])
        return httpx.Response(200)

    provider = LocalProvider(
        webhook_secret=SECRET,
        webhook_url="http://cloud.test/payments/webhook",
        http_client=httpx.Client(transport=httpx.MockTransport(webhook)),
        autopay_seconds=0.01,
    )
    refs = {}
    for payment_id, kind in ((1, "stay"), (2, "charge")):
        checkout = provider.create_checkout(
            CheckoutRequest(
                payment_id=payment_id,
                amount=250,
                currency="EUR",
                description=kind,
                metadata={"payment_id": str(payment_id), "kind": kind},
                idempotency_key=f"parkgate-checkout-{payment_id}-0",
                success_url="http://cloud.test/pay/x/result",
                cancel_url="http://cloud.test/pay/x",
            )
        )
        refs[kind] = checkout.payment_ref
    wait_for(lambda: delivered == ["charge"], timeout=5, what="the booking's payment autopaid")
    assert provider.payments[refs["charge"]].status == "succeeded"
    assert provider.payments[refs["stay"]].status == "requires_payment_method"
    assert delivered == ["charge"]  # the booking paid by itself, nothing else
