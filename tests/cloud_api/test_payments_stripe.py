"""StripeProvider against a local fake Stripe API: the official SDK really speaks HTTP to it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from cloud_api.payments import (
    InvalidSignature,
    PaymentRejected,
    ProviderUnavailable,
    StaleSignature,
    signature_header,
)
from cloud_api.payments.stripe_provider import (
    HttpxStripeHTTPClient,
    StripeProvider,
    build_stripe_client,
)
from tests.support.fake_stripe import FakeStripe, running_fake_stripe

SECRET = "whsec_test_stripe"


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    with running_fake_stripe() as fake:
        yield fake


@pytest.fixture
def provider(fake_stripe: FakeStripe) -> Iterator[StripeProvider]:
    http = HttpxStripeHTTPClient(httpx.Client(timeout=5))
    client = build_stripe_client(
        "sk_test_fake", api_base=fake_stripe.url, http_client=http, max_network_retries=0
    )
    yield StripeProvider(client, webhook_secret=SECRET)
    http.close()


def test_create_payment_sends_idempotency_key_and_metadata(
    provider: StripeProvider, fake_stripe: FakeStripe
) -> None:
    intent = provider.create_payment(
        booking_id="bk_1",
        amount=1250,
        currency="EUR",
        metadata={"lot_id": "3"},
        idempotency_key="parkgate-payment-bk_1",
    )
    assert intent.provider_ref == "pi_fake_1"
    assert intent.client_instructions["client_secret"] == "pi_fake_1_secret_x"
    req = fake_stripe.requests[0]
    assert req["path"] == "/v1/payment_intents"
    assert req["headers"]["Idempotency-Key"] == "parkgate-payment-bk_1"
    assert req["headers"]["Authorization"] == "Bearer sk_test_fake"
    assert req["params"]["amount"] == "1250"
    assert req["params"]["currency"] == "eur"
    assert req["params"]["metadata[booking_id]"] == "bk_1"
    assert req["params"]["metadata[lot_id]"] == "3"
    assert req["params"]["metadata[purpose]"] == "booking"


def test_overstay_is_a_payment_intent_marked_overstay(
    provider: StripeProvider, fake_stripe: FakeStripe
) -> None:
    provider.charge_overstay(
        booking_id="bk_2", amount=300, currency="eur", metadata={}, idempotency_key="k-ovr"
    )
    assert fake_stripe.requests[0]["params"]["metadata[purpose]"] == "overstay"
    assert fake_stripe.requests[0]["headers"]["Idempotency-Key"] == "k-ovr"


def test_refund(provider: StripeProvider, fake_stripe: FakeStripe) -> None:
    refund = provider.refund("pi_fake_9", amount=400, idempotency_key="parkgate-refund-bk_1")
    assert (refund.provider_ref, refund.amount, refund.status) == ("re_fake_1", 400, "succeeded")
    req = fake_stripe.requests[0]
    assert req["path"] == "/v1/refunds"
    assert req["params"] == {"payment_intent": "pi_fake_9", "amount": "400"}  # no metadata given
    assert req["headers"]["Idempotency-Key"] == "parkgate-refund-bk_1"


def test_errors_are_translated(provider: StripeProvider, fake_stripe: FakeStripe) -> None:
    fake_stripe.next_status = [402, 500]
    with pytest.raises(PaymentRejected):
        provider.refund("pi_x", amount=1, idempotency_key="a")
    with pytest.raises(ProviderUnavailable):
        provider.refund("pi_x", amount=1, idempotency_key="b")


def test_unreachable_api_is_unavailable() -> None:
    http = HttpxStripeHTTPClient(httpx.Client(timeout=5))
    client = build_stripe_client(
        "sk_test_fake", api_base="http://127.0.0.1:9", http_client=http, max_network_retries=0
    )
    with pytest.raises(ProviderUnavailable):
        StripeProvider(client, webhook_secret=SECRET).refund("pi", amount=1, idempotency_key="k")
    http.close()


def test_verify_webhook_through_the_sdk(provider: StripeProvider) -> None:
    body = json.dumps(
        {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {}}
    ).encode()
    event = provider.verify_webhook(body, signature_header(body, SECRET))
    assert event["id"] == "evt_1"
    assert event["type"] == "payment_intent.succeeded"
    with pytest.raises(InvalidSignature):
        provider.verify_webhook(body, signature_header(body, "whsec_wrong"))
    old = signature_header(body, SECRET, timestamp=int(time.time()) - 301)
    with pytest.raises(StaleSignature):
        provider.verify_webhook(body, old)
