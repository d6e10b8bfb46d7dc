"""Forged, tampered, stale and replayed payment webhooks leave the database exactly as it was."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.models import Booking, Payment
from cloud_api.payments import SIGNATURE_HEADER, signature_header
from devservices import World
from tests.attacks.conftest import SECRET, dump
from tests.support.cloud import Clock, TestClient

H = timedelta(hours=1)


def _pending_booking(client: TestClient, world: World, clock: Clock, who: str = "alice") -> str:
    body = {
        "parking_lot_id": world.lot_id,
        "vehicle_plate": "AB123",
        "vehicle_type": "car",
        "start_time": (clock.now + H).isoformat(),
        "end_time": (clock.now + 3 * H).isoformat(),
    }
    r = client.post("/bookings", json=body, headers=world.auth(who))
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    return str(r.json()["booking_id"])


def _paid(
    booking_id: str,
    event_id: str = "evt_attack_1",
    kind: str = "succeeded",
    charge: Payment | None = None,
) -> bytes:
    """A ``payment_intent`` event; with ``charge``, one that names it as the provider would
    (our payment id in the metadata, its amount and currency)."""
    obj: dict[str, Any] = {"id": "pi_attack", "metadata": {"booking_id": booking_id}}
    if charge is not None:
        obj["metadata"]["payment_id"] = str(charge.id)
        obj.update(amount=charge.amount_cents, amount_received=charge.amount_cents)
        obj["currency"] = charge.currency.lower()
    event: dict[str, Any] = {
        "id": event_id,
        "type": f"payment_intent.{kind}",
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def _charge(sessions: sessionmaker[Session], booking_id: str) -> Payment:
    with sessions() as s:
        return s.scalars(select(Payment).where(Payment.booking_id == booking_id)).one()


def _post(client: TestClient, payload: bytes, header: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[SIGNATURE_HEADER] = header
    return client.post("/payments/webhook", content=payload, headers=headers)


def _forgeries(booking: str, other: str) -> list[tuple[str, bytes, str | None, str]]:
    """(name, body, signature header, the refusal expected)."""
    real = _paid(booking)
    return [
        ("unsigned", real, None, "bad_signature"),
        ("wrong secret", real, signature_header(real, "whsec_guessed"), "bad_signature"),
        ("garbage header", real, "t=abc,v1=zz", "bad_signature"),
        (
            "stale",
            real,
            signature_header(real, SECRET, timestamp=int(time.time()) - 3600),
            "stale_signature",
        ),
        ("tampered", _paid(other), signature_header(real, SECRET), "bad_signature"),
        ("signed garbage", b"not json", signature_header(b"not json", SECRET), "malformed_event"),
        (
            "signed no id",
            b'{"type": "x"}',
            signature_header(b'{"type": "x"}', SECRET),
            "malformed_event",
        ),
    ]


@pytest.mark.parametrize("index", range(7))
def test_a_forged_webhook_changes_nothing(
    client: TestClient, world: World, clock: Clock, sessions: sessionmaker[Session], index: int
) -> None:
    booking = _pending_booking(client, world, clock)
    other = _pending_booking(client, world, clock, "bob")
    name, payload, header, refusal = _forgeries(booking, other)[index]
    before = dump(sessions)
    r = _post(client, payload, header)
    assert (r.status_code, r.json()["result"]) == (400, refusal), name
    assert dump(sessions) == before, name


def test_a_replayed_webhook_changes_nothing(
    client: TestClient, world: World, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    booking = _pending_booking(client, world, clock)
    charge = _charge(sessions, booking)
    payload = _paid(booking, charge=charge)
    header = signature_header(payload, SECRET)
    assert _post(client, payload, header).json()["result"] == "confirmed"
    after_first = dump(sessions)
    again = _post(client, payload, header)
    assert (again.status_code, again.json()["result"]) == (200, "duplicate")
    # the same event id with another effect (a "failed" that would release the booking)
    failed = _paid(booking, kind="payment_failed", charge=charge)
    other = _post(client, failed, signature_header(failed, SECRET))
    assert other.json()["result"] == "duplicate"
    assert dump(sessions) == after_first
    with sessions() as s:
        assert s.get_one(Booking, booking).status == "confirmed"
