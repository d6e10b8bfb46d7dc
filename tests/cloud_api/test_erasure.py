"""DELETE /me/data: a customer's personal data and plates go, the accounting rows stay; refused
with a reason while a booking is active or money is pending."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.lot_sync import GateEventRecord
from cloud_api.models import Booking, EventLog, Payment, User, Vehicle
from devservices import World
from tests.cloud_api.test_api import body
from tests.cloud_api.test_retention import _event
from tests.support.cloud import T0, Clock, TestClient

H = timedelta(hours=1)


def _book(client: TestClient, world: World, clock: Clock, who: str, slot: int = 0) -> str:
    window = body(world, clock, (1 + 4 * slot) * H, (3 + 4 * slot) * H)
    r = client.post("/bookings", json=window, headers=world.auth(who))
    assert r.status_code == 201, r.text
    return str(r.json()["booking_id"])


def _finish(s: Session, booking_id: str) -> None:
    b = s.get_one(Booking, booking_id)
    b.status, b.end_time = "completed", T0 - H
    b.start_time, b.arrived_at, b.exited_at = T0 - 3 * H, T0 - 3 * H, T0 - H


def test_a_pending_booking_blocks_erasure(client: TestClient, world: World, clock: Clock) -> None:
    booking = _book(client, world, clock, "alice")
    r = client.delete("/me/data", headers=world.auth("alice"))
    assert (r.status_code, r.json()["reason"]) == (409, "booking_active")
    assert booking in r.json()["detail"]
    assert client.get("/bookings", headers=world.auth("alice")).status_code == 200  # untouched


def test_money_owed_or_a_refund_in_flight_blocks_erasure(
    client: TestClient, world: World, clock: Clock, session_factory: sessionmaker[Session]
) -> None:
    booking = _book(client, world, clock, "alice")
    with session_factory.begin() as s:
        _finish(s, booking)
        s.get_one(Booking, booking).amount_owed_cents = 700
    r = client.delete("/me/data", headers=world.auth("alice"))
    assert (r.status_code, r.json()["reason"]) == (409, "money_pending")
    with session_factory.begin() as s:
        s.get_one(Booking, booking).amount_owed_cents = 0
        s.add(
            Payment(
                booking_id=booking,
                amount_cents=300,
                currency="EUR",
                status="refund_pending",
                kind="refund",
                idempotency_key="refund-1",
            )
        )
    r = client.delete("/me/data", headers=world.auth("alice"))
    assert (r.status_code, r.json()["reason"]) == (409, "money_pending")


def test_erasure_removes_personal_data_and_keeps_accounting(
    client: TestClient, world: World, clock: Clock, session_factory: sessionmaker[Session]
) -> None:
    mine = _book(client, world, clock, "alice")
    bobs = _book(client, world, clock, "bob", slot=1)
    with session_factory.begin() as s:
        _finish(s, mine)
        alice_id = s.get_one(Booking, mine).user_id
        s.add(Vehicle(user_id=alice_id, plate="AB123"))
        s.add(_event("ev-mine", world.lot_id, H, reservation=mine))
        s.add(_event("ev-bob", world.lot_id, H, reservation=bobs))
        price = s.get_one(Booking, mine).price_cents

    r = client.delete("/me/data", headers=world.auth("alice"))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "erased": True,
        "bookings_kept": 1,
        "vehicles_deleted": 1,
        "gate_events_blanked": 1,
    }
    assert client.get("/bookings", headers=world.auth("alice")).status_code == 401
    with session_factory() as s:
        alice = s.get_one(User, alice_id)
        assert "alice" not in alice.email and alice.name == "erased"
        kept = s.get_one(Booking, mine)
        assert kept.plate == "" and kept.price_cents == price and kept.status == "completed"
        assert s.scalars(select(Vehicle).where(Vehicle.user_id == alice_id)).first() is None
        history = s.scalars(select(EventLog).where(EventLog.booking_id == mine)).all()
        assert history and all("AB123" not in str(e.payload) for e in history)
        assert s.get_one(GateEventRecord, "ev-mine").plate is None
        assert s.get_one(GateEventRecord, "ev-bob").plate == "AB123CD"
        assert s.get_one(Booking, bobs).plate == "AB123"


def test_only_customers_erase_themselves(client: TestClient, world: World) -> None:
    for who in ("operator", "device", "admin"):
        assert client.delete("/me/data", headers=world.auth(who)).status_code == 403, who
