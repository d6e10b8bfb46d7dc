"""The demo's customer: the local provider pays new payments by itself and retries delivery."""

from __future__ import annotations

import json
import threading

import httpx

from cloud_api.payments.local_provider import LocalProvider
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
