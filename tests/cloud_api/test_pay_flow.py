"""Payments that complete: the booking answer says where to pay, the pay pages, Stripe Checkout on
the official SDK against the fake Stripe API, and money rules that cannot be gamed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from cloud_api.app import create_app
from cloud_api.daemons import outbox_handlers
from cloud_api.models import Booking, EventLog, Lot, OutboxMessage, Payment, utcnow
from cloud_api.outbox import OutboxWorker
from cloud_api.payments import (
    SIGNATURE_HEADER,
    InProcessTransport,
    LocalProvider,
    signature_header,
)
from cloud_api.payments.checkout import PayLinks
from cloud_api.payments.stripe_provider import (
    HttpxStripeHTTPClient,
    StripeProvider,
    build_stripe_client,
)
from cloud_api.seed import add_lot, add_user
from cloud_api.settings import Settings
from cloud_api.visits import record_arrival, record_exit
from tests.support.cloud import TestClient
from tests.support.fake_stripe import FakeStripe, running_fake_stripe

SECRET = "whsec_pay_flow"
PUBLIC = "https://park.test"


@dataclass
class Shop:
    app: FastAPI
    client: TestClient
    token: str
    lot_id: int

    @property
    def sessions(self) -> Any:
        return self.app.state.sessions

    def book(self, hours: int = 1, starts_in: timedelta = timedelta(hours=1)) -> httpx.Response:
        start = utcnow() + starts_in
        body = {
            "parking_lot_id": self.lot_id,
            "vehicle_plate": "HB 42 XY",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=hours)).isoformat(),
        }
        return self.client.post("/bookings", json=body, headers=self.auth)

    def extend(self, booking: dict[str, Any], hours: int) -> httpx.Response:
        end = booking["start_time"].replace("Z", "+00:00")
        from datetime import datetime

        new_end = datetime.fromisoformat(end) + timedelta(hours=hours)
        return self.client.post(
            f"/bookings/{booking['booking_id']}/extend",
            json={"end_time": new_end.isoformat()},
            headers=self.auth,
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def webhook(self, event: dict[str, Any]) -> httpx.Response:
        body = json.dumps(event).encode()
        headers = {SIGNATURE_HEADER: signature_header(body, SECRET)}
        return self.client.post("/payments/webhook", content=body, headers=headers)

    def booking(self, booking_id: str) -> Booking:
        with self.sessions() as session:
            return session.get_one(Booking, booking_id)

    def money(self) -> dict[str, Any]:
        """Everything a payment event could change."""
        with self.sessions() as session:
            return {
                "bookings": session.execute(
                    select(Booking.id, Booking.status, Booking.amount_owed_cents, Booking.end_time)
                ).all(),
                "payments": session.execute(
                    select(
                        Payment.id,
                        Payment.status,
                        Payment.captured_cents,
                        Payment.refunded_cents,
                        Payment.kind,
                        Payment.provider_ref,
                    )
                ).all(),
                "outbox": session.scalar(select(func.count()).select_from(OutboxMessage)),
            }


def _shop(database_url: str, provider: Any) -> Iterator[Shop]:
    settings = Settings(database_url=database_url, hold_sweep_seconds=0, public_url=PUBLIC)
    app = create_app(settings, payment_provider=provider)
    with app.state.sessions.begin() as session:
        lot_id = add_lot(session, "Harbour", {"car": 6}).id
        token = add_user(session, "ana@example.com", name="Ana").token
    with TestClient(app) as client:
        yield Shop(app, client, token, lot_id)
    app.state.engine.dispose()


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with running_fake_stripe() as running:
        yield running


@pytest.fixture
def stripe_shop(sqlite_url: str, fake: FakeStripe) -> Iterator[Shop]:
    http = HttpxStripeHTTPClient(httpx.Client(timeout=5))
    client = build_stripe_client(
        "sk_test_fake", api_base=fake.url, http_client=http, max_network_retries=0
    )
    yield from _shop(sqlite_url, StripeProvider(client, webhook_secret=SECRET))
    http.close()


def _checkouts(fake: FakeStripe) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["path"] == "/v1/checkout/sessions"]


def test_a_booking_answers_with_a_stripe_checkout_that_confirms_it_once(
    stripe_shop: Shop, fake: FakeStripe
) -> None:
    created = stripe_shop.book()
    assert created.status_code == 201, created.text
    booking = created.json()
    payment = booking["payment"]
    assert payment["status"] == "awaiting_payment" and payment["problem"] is None
    assert re.fullmatch(rf"{PUBLIC}/pay/[0-9a-f]{{32}}", payment["pay_url"])
    (opened,) = _checkouts(fake)  # in the request path, after the booking committed
    assert payment["checkout_url"] == fake.sessions["cs_fake_1"]["url"]
    assert opened["headers"]["Idempotency-Key"] == f"parkgate-checkout-{payment['payment_id']}-0"
    assert opened["params"]["line_items[0][price_data][unit_amount]"] == str(booking["price"])
    assert opened["params"]["metadata[payment_id]"] == str(payment["payment_id"])
    assert opened["params"]["payment_intent_data[metadata][payment_id]"] == str(
        payment["payment_id"]
    )

    page = stripe_shop.client.get(payment["pay_url"], follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, payment["checkout_url"])
    assert len(_checkouts(fake)) == 1  # the page reuses the open checkout

    completed = fake.session_event("cs_fake_1", "checkout.session.completed")
    assert stripe_shop.webhook(completed).json()["result"] == "confirmed"
    after = stripe_shop.money()
    assert stripe_shop.webhook(fake.intent_event("cs_fake_1")).json()["result"] == (
        "already_applied"
    )
    assert stripe_shop.webhook(completed).json()["result"] == "duplicate"
    assert stripe_shop.money() == after
    assert stripe_shop.booking(booking["booking_id"]).status == "confirmed"
    result = stripe_shop.client.get(payment["pay_url"] + "/result")
    assert result.status_code == 200 and "Paid" in result.text
    shown = stripe_shop.client.get(f"/bookings/{booking['booking_id']}", headers=stripe_shop.auth)
    assert shown.json()["payment"]["status"] == "paid"


def test_provider_down_the_booking_stands_and_the_page_opens_the_checkout_later(
    stripe_shop: Shop, fake: FakeStripe
) -> None:
    fake.next_status = [503]
    created = stripe_shop.book()
    assert created.status_code == 201, created.text
    payment = created.json()["payment"]
    assert created.json()["status"] == "pending"
    assert (payment["problem"], payment["checkout_url"]) == ("provider_unavailable", None)
    assert payment["pay_url"]
    page = stripe_shop.client.get(payment["pay_url"], follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("https://checkout.stripe.test/")
    keys = {r["headers"]["Idempotency-Key"] for r in _checkouts(fake)}
    assert keys == {f"parkgate-checkout-{payment['payment_id']}-0"}  # the same, retried


@pytest.mark.parametrize(
    "change", [{"amount_total": 1}, {"currency": "usd"}], ids=["amount", "currency"]
)
def test_a_capture_of_another_amount_or_currency_confirms_nothing(
    stripe_shop: Shop, fake: FakeStripe, change: dict[str, Any]
) -> None:
    booking = stripe_shop.book().json()
    before = stripe_shop.money()
    event = fake.session_event("cs_fake_1", "checkout.session.completed", **change)
    answer = stripe_shop.webhook(event)
    assert answer.status_code == 200  # Stripe stops retrying
    assert answer.json()["result"] == f"{next(iter(change)).split('_')[0]}_mismatch"
    intent = fake.intent_event(
        "cs_fake_1", **{k.replace("_total", ""): v for k, v in change.items()}
    )
    if "amount_total" in change:
        intent["data"]["object"]["amount_received"] = 1
    assert stripe_shop.webhook(intent).json()["result"].endswith("_mismatch")
    assert stripe_shop.money() == before
    assert stripe_shop.booking(booking["booking_id"]).status == "pending"
    with stripe_shop.sessions() as session:
        logged = session.scalars(select(EventLog).where(EventLog.kind == "payment.mismatch")).all()
    assert len(logged) == 2


def test_a_payment_paid_twice_refunds_the_second_capture(
    stripe_shop: Shop, fake: FakeStripe
) -> None:
    booking = stripe_shop.book().json()
    payment_id, price = booking["payment"]["payment_id"], booking["price"]
    # the first checkout expires, the page opens a second: the customer pays both
    expired = fake.session_event("cs_fake_1", "checkout.session.expired")
    assert stripe_shop.webhook(expired).json()["result"] == "checkout_expired"
    stripe_shop.client.get(booking["payment"]["pay_url"], follow_redirects=False)
    second = _checkouts(fake)[-1]
    assert second["headers"]["Idempotency-Key"] == f"parkgate-checkout-{payment_id}-1"
    (second_id,) = set(fake.sessions) - {"cs_fake_1"}
    first_paid = fake.session_event("cs_fake_1", "checkout.session.completed")
    assert stripe_shop.webhook(first_paid).json()["result"] == "confirmed"
    before = stripe_shop.money()
    second_paid = fake.session_event(second_id, "checkout.session.completed")
    assert stripe_shop.webhook(second_paid).json()["result"] == "duplicate_capture_refunded"
    again = stripe_shop.webhook(fake.intent_event(second_id)).json()["result"]
    assert again == "duplicate_capture_refunded_already"
    with stripe_shop.sessions() as session:
        refund = session.scalars(select(Payment).where(Payment.kind == "refund")).one()
        charge = session.get_one(Payment, payment_id)
        assert (refund.amount_cents, refund.refund_of) == (price, payment_id)
        assert (charge.captured_cents, charge.refunded_cents) == (price, 0)
    after = stripe_shop.money()
    assert after["bookings"] == before["bookings"]  # still confirmed, nothing owed
    worker = OutboxWorker(
        stripe_shop.sessions,
        outbox_handlers(provider=stripe_shop.app.state.payment_provider, links=PayLinks(PUBLIC)),
    )
    worker.run_once()
    refunds = [r for r in fake.requests if r["path"] == "/v1/refunds"]
    assert [(r["params"]["payment_intent"], r["params"]["amount"]) for r in refunds] == [
        ("pi_for_" + second_id, str(price))
    ]


def test_an_extension_is_refused_while_unpaid_and_owed_until_paid(
    stripe_shop: Shop, fake: FakeStripe
) -> None:
    booking = stripe_shop.book().json()
    before = stripe_shop.money()
    refused = stripe_shop.extend(booking, hours=24 * 30)
    assert (refused.status_code, refused.json()["reason"]) == (409, "payment_pending")
    assert stripe_shop.money() == before
    stripe_shop.webhook(fake.session_event("cs_fake_1", "checkout.session.completed"))

    extended = stripe_shop.extend(booking, hours=5)
    assert extended.status_code == 200, extended.text
    out = extended.json()
    delta = out["price"] - booking["price"]
    assert delta > 0 and out["amount_owed_cents"] == delta
    assert (out["payment"]["kind"], out["payment"]["amount_cents"]) == ("extension", delta)
    assert out["payment"]["checkout_url"]
    again = stripe_shop.extend(booking, hours=6)
    assert (again.status_code, again.json()["reason"]) == (409, "payment_pending")

    (session_id,) = set(fake.sessions) - {"cs_fake_1"}
    paid = stripe_shop.webhook(fake.session_event(session_id, "checkout.session.completed"))
    assert paid.json()["result"] == "owed_reduced"
    assert stripe_shop.booking(booking["booking_id"]).amount_owed_cents == 0


def test_unpaid_holds_per_customer_and_lot_are_capped(stripe_shop: Shop) -> None:
    for n in range(3):  # LotPolicy.max_unpaid_holds defaults to 3
        assert stripe_shop.book(starts_in=timedelta(hours=1 + 2 * n)).status_code == 201
    before = stripe_shop.money()
    refused = stripe_shop.book(starts_in=timedelta(hours=9))
    assert (refused.status_code, refused.json()["reason"]) == (429, "too_many_unpaid_holds")
    assert stripe_shop.money() == before


def test_an_early_exit_after_a_partial_capture_refunds_at_most_what_was_captured(
    stripe_shop: Shop, fake: FakeStripe
) -> None:
    with stripe_shop.sessions.begin() as session:
        session.get_one(Lot, stripe_shop.lot_id).early_exit_policy = "pro_rata"
    booking = stripe_shop.book(hours=1, starts_in=timedelta(minutes=1)).json()
    stripe_shop.webhook(fake.session_event("cs_fake_1", "checkout.session.completed"))
    extended = stripe_shop.extend(booking, hours=24 * 20)  # an unpaid extension
    assert extended.status_code == 200
    extended_by = extended.json()["price"] - booking["price"]
    with stripe_shop.sessions.begin() as session:
        row = session.get_one(Booking, booking["booking_id"])
        record_arrival(session, row, at=row.start_time, now=row.start_time)
        left = row.start_time + timedelta(minutes=5)  # reported when it happened (not flagged)
        outcome = record_exit(session, row, at=left, now=left)
    with stripe_shop.sessions() as session:
        charge = session.get_one(Payment, booking["payment"]["payment_id"])
        refunds = session.scalars(select(Payment).where(Payment.kind == "refund")).all()
        refunded = session.get_one(Booking, booking["booking_id"]).refunded_cents
        owed = session.get_one(Booking, booking["booking_id"]).amount_owed_cents
    captured = booking["price"]
    assert sum(r.amount_cents for r in refunds) == refunded
    assert 0 < refunded <= captured  # the unpaid extension is never refunded
    assert charge.refunded_cents == refunded <= charge.captured_cents
    # the rest of the credit comes off the unpaid extension: nothing is owed twice or invented
    extension = outcome.credit_cents - refunded
    assert extension > 0 and owed == extended_by - extension


@pytest.fixture
def local_shop(sqlite_url: str) -> Iterator[Shop]:
    provider = LocalProvider(webhook_secret=SECRET, webhook_url="/payments/webhook")
    for shop in _shop(sqlite_url, provider):
        with httpx.Client(transport=InProcessTransport(shop.app), base_url=PUBLIC) as client:
            provider.use_http_client(client)
            yield shop


def test_the_local_pay_page_pays_through_the_signed_webhook(local_shop: Shop) -> None:
    booking = local_shop.book().json()
    payment = booking["payment"]
    assert payment["checkout_url"] is None and payment["client_secret"] is None
    path = payment["pay_url"].removeprefix(PUBLIC)
    page = local_shop.client.get(path)
    assert page.status_code == 200 and f'action="{path}/local"' in page.text
    assert local_shop.client.get(path + "/result").text.count("Pending") >= 1
    paid = local_shop.client.post(path + "/local", follow_redirects=False)
    assert (paid.status_code, paid.headers["location"]) == (303, payment["pay_url"] + "/result")
    assert local_shop.booking(booking["booking_id"]).status == "confirmed"
    assert "Paid" in local_shop.client.get(path + "/result").text
    again = local_shop.client.get(path, follow_redirects=False)
    assert again.status_code == 303  # paid: the page only shows the result


def test_unknown_or_malformed_pay_links_are_404(local_shop: Shop) -> None:
    for path in ("/pay/1", "/pay/" + "0" * 32, "/pay/" + "0" * 32 + "/result", "/pay/%00"):
        assert local_shop.client.get(path).status_code == 404, path
    assert local_shop.client.post("/pay/" + "a" * 32 + "/local").status_code == 404
