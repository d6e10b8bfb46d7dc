"""POST /payments/webhook: untrusted or replayed events have no effect; real ones drive bookings."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.bookings import BookingRequest, create_booking
from cloud_api.daemons import outbox_handlers
from cloud_api.models import (
    Booking,
    EventLog,
    LotChange,
    OutboxMessage,
    Payment,
    User,
    utcnow,
)
from cloud_api.outbox import OutboxWorker
from cloud_api.payments import (
    SIGNATURE_HEADER,
    InProcessTransport,
    LocalProvider,
    signature_header,
)
from cloud_api.seed import add_lot, add_user
from cloud_api.webhooks import WebhookEvent, router

SECRET = "whsec_test_webhooks"


@dataclass
class Harness:
    sessions: sessionmaker[Session]
    provider: LocalProvider
    client: httpx.Client
    worker: OutboxWorker
    user_id: int
    lot_id: int

    def book(self, *, hours: int = 2, starts_in: timedelta = timedelta(hours=1)) -> str:
        now = utcnow()
        with self.sessions.begin() as session:
            user = session.get_one(User, self.user_id)
            req = BookingRequest(
                self.lot_id,
                "AB123CD",
                "car",
                now + starts_in,
                now + starts_in + timedelta(hours=hours),
            )
            return create_booking(session, user, req, now).id

    def charge_ref(self, booking_id: str) -> str:
        self.worker.run_once()
        with self.sessions() as session:
            ref = session.scalars(
                select(Payment.provider_ref).where(
                    Payment.booking_id == booking_id, Payment.kind == "charge"
                )
            ).one()
        assert ref is not None
        return ref

    def status(self, booking_id: str) -> str:
        with self.sessions() as session:
            return session.get_one(Booking, booking_id).status

    def snapshot(self) -> dict[str, Any]:
        """Everything a webhook could change."""
        with self.sessions() as session:
            return {
                "bookings": session.execute(
                    select(Booking.id, Booking.status, Booking.amount_owed_cents)
                ).all(),
                "payments": session.execute(
                    select(Payment.id, Payment.status, Payment.provider_ref, Payment.kind)
                ).all(),
                "outbox": session.scalar(select(func.count()).select_from(OutboxMessage)),
                "changes": session.scalar(select(func.count()).select_from(LotChange)),
                "events": session.scalar(select(func.count()).select_from(EventLog)),
                "webhooks": session.scalar(select(func.count()).select_from(WebhookEvent)),
            }

    def post(self, body: bytes, header: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers[SIGNATURE_HEADER] = header
        return self.client.post("/payments/webhook", content=body, headers=headers)


def webhook_app(sessions: sessionmaker[Session], provider: LocalProvider) -> FastAPI:
    """The smallest app that mounts the router the way cloud_api.app does."""
    app = FastAPI()
    app.include_router(router)
    app.state.sessions = sessions
    app.state.payment_provider = provider
    return app


@pytest.fixture
def harness(session_factory: sessionmaker[Session]) -> Iterator[Harness]:
    with session_factory.begin() as session:
        lot = add_lot(session, "Central", {"car": 2})
        user = add_user(session, "ana@example.com", name="Ana").user
        lot_id, user_id = lot.id, user.id
    provider = LocalProvider(webhook_secret=SECRET, webhook_url="/payments/webhook")
    transport = InProcessTransport(webhook_app(session_factory, provider))
    with httpx.Client(transport=transport, base_url="http://cloud.test") as client:
        provider.use_http_client(client)
        worker = OutboxWorker(session_factory, outbox_handlers(provider=provider))
        yield Harness(session_factory, provider, client, worker, user_id, lot_id)


def _succeeded_event(h: Harness, ref: str) -> bytes:
    payment = h.provider.payments[ref]
    payment.status = "succeeded"
    obj = h.provider._intent_object(payment)
    return json.dumps(h.provider.event("payment_intent.succeeded", obj)).encode()


def test_success_confirms_and_failure_releases(harness: Harness) -> None:
    paid, declined = harness.book(), harness.book(starts_in=timedelta(hours=5))
    response = harness.provider.complete(harness.charge_ref(paid))
    assert response.status_code == 200 and response.json()["result"] == "confirmed"
    assert harness.status(paid) == "confirmed"
    harness.provider.decline_next()
    response = harness.provider.complete(harness.charge_ref(declined))
    assert response.json()["result"] == "released"
    assert harness.status(declined) == "cancelled"
    with harness.sessions() as session:
        statuses = dict(session.execute(select(Payment.booking_id, Payment.status)).all())
        templates = [
            m.payload["template"]
            for m in session.scalars(select(OutboxMessage))
            if m.kind == "notify.email"
        ]
    assert statuses == {paid: "succeeded", declined: "failed"}
    assert sorted(templates) == ["payment_confirmed", "payment_failed"]


def test_bad_signature_has_no_effect(harness: Harness) -> None:
    booking = harness.book()
    body = _succeeded_event(harness, harness.charge_ref(booking))
    before = harness.snapshot()
    for header in [
        None,
        "",
        "t=notanumber,v1=abc",
        signature_header(body, "whsec_someone_else"),
        signature_header(body + b" ", SECRET),
    ]:
        response = harness.post(body, header)
        assert response.status_code == 400, header
        assert response.json()["result"] == "bad_signature"
    assert harness.snapshot() == before
    assert harness.status(booking) == "pending"


def test_stale_timestamp_has_no_effect(harness: Harness) -> None:
    booking = harness.book()
    body = _succeeded_event(harness, harness.charge_ref(booking))
    before = harness.snapshot()
    stale = signature_header(body, SECRET, timestamp=int(time.time()) - 301)
    response = harness.post(body, stale)
    assert (response.status_code, response.json()["result"]) == (400, "stale_signature")
    future = signature_header(body, SECRET, timestamp=int(time.time()) + 3600)
    assert harness.post(body, future).status_code == 400
    assert harness.snapshot() == before
    assert harness.status(booking) == "pending"


def test_replayed_event_id_has_no_effect(harness: Harness) -> None:
    booking = harness.book()
    ref = harness.charge_ref(booking)
    body = _succeeded_event(harness, ref)
    first = harness.post(body, harness.provider.sign(body))
    assert (first.status_code, first.json()["result"]) == (200, "confirmed")
    after_first = harness.snapshot()
    # same event id, freshly signed (a provider retry or an attacker replaying a captured body)
    replay = harness.post(body, harness.provider.sign(body))
    assert (replay.status_code, replay.json()["result"]) == (200, "duplicate")
    # same id, different content: still the same event, still ignored
    event = json.loads(body)
    event["type"] = "payment_intent.payment_failed"
    altered = json.dumps(event).encode()
    assert harness.post(altered, harness.provider.sign(altered)).json()["result"] == "duplicate"
    assert harness.snapshot() == after_first
    assert harness.status(booking) == "confirmed"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"evt"',
        b"{}",
        b'{"id": 5, "type": "payment_intent.succeeded"}',
        b'{"id": "evt_x"}',
    ],
)
def test_malformed_signed_bodies_are_400_never_500(harness: Harness, body: bytes) -> None:
    before = harness.snapshot()
    response = harness.post(body, harness.provider.sign(body))
    assert response.status_code == 400
    assert harness.snapshot() == before


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_a", "type": "payment_intent.succeeded"},
        {"id": "evt_b", "type": "payment_intent.succeeded", "data": "x"},
        {"id": "evt_c", "type": "payment_intent.succeeded", "data": {"object": {"id": 5}}},
        {"id": "evt_d", "type": "payment_intent.payment_failed", "data": {"object": []}},
        {
            "id": "evt_e",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_unknown", "metadata": {"booking_id": "bk_nope"}}},
        },
        {"id": "evt_f", "type": "charge.refunded", "data": {"object": {"refunds": "x"}}},
        {"id": "evt_g", "type": "customer.created", "data": {"object": {}}},
    ],
)
def test_odd_but_signed_events_are_recorded_not_applied(
    harness: Harness, event: dict[str, Any]
) -> None:
    booking = harness.book()
    harness.charge_ref(booking)
    body = json.dumps(event).encode()
    response = harness.post(body, harness.provider.sign(body))
    assert response.status_code == 200
    assert harness.status(booking) == "pending"


def test_payment_after_the_hold_expired_is_refunded(harness: Harness) -> None:
    booking = harness.book()
    ref = harness.charge_ref(booking)
    with harness.sessions.begin() as session:
        session.get_one(Booking, booking).status = "expired"
    assert harness.provider.complete(ref).json()["result"] == "refund_late_payment"
    with harness.sessions() as session:
        refund = session.scalars(select(Payment).where(Payment.kind == "refund")).one()
    assert refund.amount_cents == harness.provider.payments[ref].amount
    harness.worker.run_once()
    assert harness.provider.payments[ref].refunded == refund.amount_cents
    with harness.sessions() as session:
        assert session.get_one(Payment, refund.id).status == "refunded"
