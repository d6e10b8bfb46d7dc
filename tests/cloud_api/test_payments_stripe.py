"""StripeProvider against a local fake Stripe API: the official SDK really speaks HTTP to it."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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

SECRET = "whsec_test_stripe"


@dataclass
class FakeStripe:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    next_status: list[int] = field(default_factory=list)


def _handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            params = {k: v[0] for k, v in form.items()}
            fake.requests.append(
                {"path": self.path, "headers": dict(self.headers), "params": params}
            )
            status = fake.next_status.pop(0) if fake.next_status else 200
            if status == 402:
                body: dict[str, Any] = {
                    "error": {"type": "card_error", "code": "card_declined", "message": "no"}
                }
            elif status >= 400:
                body = {"error": {"type": "api_error", "message": "boom"}}
            elif self.path == "/v1/payment_intents":
                n = len(fake.requests)
                body = {
                    "id": f"pi_fake_{n}",
                    "object": "payment_intent",
                    "amount": int(params["amount"]),
                    "currency": params["currency"],
                    "status": "requires_payment_method",
                    "client_secret": f"pi_fake_{n}_secret_x",
                    "metadata": {},
                }
            else:
                body = {
                    "id": f"re_fake_{len(fake.requests)}",
                    "object": "refund",
                    "amount": int(params["amount"]),
                    "payment_intent": params["payment_intent"],
                    "status": "succeeded",
                }
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


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
