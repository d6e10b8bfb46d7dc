"""The HTTP API in process (TestClient over ASGI) on a migrated SQLite database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from devservices import World
from tests.support.cloud import Clock, TestClient

H = timedelta(hours=1)


def body(
    world: World, clock: Clock, start: timedelta = H, end: timedelta = 3 * H, **kw: Any
) -> dict[str, Any]:
    return {
        "parking_lot_id": world.lot_id,
        "vehicle_plate": "ab-123",
        "vehicle_type": "car",
        "start_time": (clock.now + start).isoformat(),
        "end_time": (clock.now + end).isoformat(),
        **kw,
    }


def test_book_then_read_list_extend_plate_cancel(
    client: TestClient, world: World, clock: Clock
) -> None:
    r = client.post("/bookings", json=body(world, clock), headers=world.auth("alice"))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["booking_id"].startswith("bk_") and b["status"] == "pending" and b["price"] == 500
    assert b["vehicle_plate"] == "AB123" and b["payment"]["status"] == "awaiting_payment"
    bid = b["booking_id"]
    assert client.get(f"/bookings/{bid}", headers=world.auth("alice")).json()["space_id"]
    assert [
        x["booking_id"] for x in client.get("/bookings", headers=world.auth("alice")).json()
    ] == [bid]
    r = client.post(
        f"/bookings/{bid}/extend",
        json={"end_time": (clock.now + 4 * H).isoformat()},
        headers=world.auth("alice"),
    )
    # unpaid: an extension would be confirmed by the shorter booking's payment
    assert (r.status_code, r.json()["reason"]) == (409, "payment_pending")
    r = client.put(
        f"/bookings/{bid}/plate", json={"vehicle_plate": "RENT 1"}, headers=world.auth("alice")
    )
    assert r.json()["vehicle_plate"] == "RENT1"
    r = client.post(f"/bookings/{bid}/cancel", headers=world.auth("alice"))
    assert r.json()["status"] == "cancelled"
    assert client.post(f"/bookings/{bid}/cancel", headers=world.auth("alice")).status_code == 409


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"end_time": "2030-06-01T07:00:00+00:00"}, "end_before_start"),
        ({"start_time": "2030-05-01T07:00:00+00:00"}, "start_in_past"),
        ({"parking_lot_id": 999}, "unknown_lot"),
        ({"start_time": "2030-06-01T09:00:00"}, "invalid_request"),  # no offset
        ({"vehicle_type": "tank"}, "invalid_request"),
        ({"vehicle_plate": "!!"}, "invalid_plate"),
        ({"start_time": "9999-12-31T23:59:59-14:00"}, "invalid_request"),
    ],
)
def test_bad_input_is_422_with_reason(
    client: TestClient, world: World, clock: Clock, change: dict[str, Any], reason: str
) -> None:
    r = client.post("/bookings", json={**body(world, clock), **change}, headers=world.auth("alice"))
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == reason


def test_conflicts_are_409(client: TestClient, world: World, clock: Clock) -> None:
    space = world.space_ids[0]
    ok = client.post(
        "/bookings", json=body(world, clock, space_id=space), headers=world.auth("alice")
    )
    assert ok.status_code == 201
    r = client.post(
        "/bookings",
        json=body(world, clock, 2 * H, 5 * H, space_id=space),
        headers=world.auth("bob"),
    )
    assert (r.status_code, r.json()["reason"]) == (409, "space_overlaps")
    for _ in range(2):
        assert (
            client.post("/bookings", json=body(world, clock), headers=world.auth("bob")).status_code
            == 201
        )
    r = client.post("/bookings", json=body(world, clock), headers=world.auth("bob"))
    assert (r.status_code, r.json()["reason"]) == (409, "no_space_free")


def test_idempotency_key_replays(client: TestClient, world: World, clock: Clock) -> None:
    headers = {**world.auth("alice"), "Idempotency-Key": "k1"}
    first = client.post("/bookings", json=body(world, clock), headers=headers)
    again = client.post("/bookings", json=body(world, clock), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["booking_id"] == again.json()["booking_id"]
    other = client.post("/bookings", json=body(world, clock, 5 * H, 6 * H), headers=headers)
    assert (other.status_code, other.json()["reason"]) == (422, "idempotency_key_reused")
    assert len(client.get("/bookings", headers=world.auth("alice")).json()) == 1


def test_unpaid_hold_expires_and_frees_the_space(
    client: TestClient, world: World, clock: Clock
) -> None:
    req = body(world, clock, 2 * H, 3 * H, vehicle_type="ev")
    bid = client.post("/bookings", json=req, headers=world.auth("alice")).json()["booking_id"]
    assert client.post("/bookings", json=req, headers=world.auth("bob")).status_code == 409
    clock.advance(timedelta(minutes=16))
    assert client.post("/bookings", json=req, headers=world.auth("bob")).status_code == 201
    assert client.get(f"/bookings/{bid}", headers=world.auth("alice")).json()["status"] == "expired"


def test_lots_search_and_availability(client: TestClient, world: World, clock: Clock) -> None:
    near = client.get("/parkingLots", params={"lat": 52.52, "lon": 13.40, "radius_km": 2}).json()
    assert [x["id"] for x in near] == [world.lot_id] and near[0]["free_spaces_now"] == 4
    paris = client.get("/parkingLots", params={"country": "fr", "city": "paris"}).json()
    assert [x["id"] for x in paris] == [world.other_lot_id]
    client.post("/bookings", json=body(world, clock, 0 * H, 3 * H), headers=world.auth("alice"))
    params = {"start": (clock.now + H).isoformat(), "end": (clock.now + 2 * H).isoformat()}
    r = client.get(f"/parkingLots/{world.lot_id}/availability", params=params)
    cars = next(t for t in r.json()["vehicle_types"] if t["vehicle_type"] == "car")
    assert cars["free_spaces"] == 2 and cars["price_cents"] == 250
    assert cars["free_until"] is None
    assert client.get("/parkingLots/999/availability", params=params).status_code == 404
    assert client.get(f"/parkingLots/{world.lot_id}").json()["free_spaces_now"] == 3


def test_gate_access_arrival_exit_overstay(client: TestClient, world: World, clock: Clock) -> None:
    bid = client.post(
        "/bookings", json=body(world, clock, H, 2 * H), headers=world.auth("alice")
    ).json()["booking_id"]
    q = {"plate": "AB 123", "parking_lot_id": world.lot_id}
    dev = world.auth("device")
    assert client.get("/parkingAccess", params=q, headers=dev).json()["reason"] == "not_paid"
    admin = world.auth("admin")
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        from cloud_api.bookings import confirm_payment

        confirm_payment(s, bid, now=clock.now)
        s.commit()
    assert client.get("/parkingAccess", params=q, headers=dev).json()["reason"] == "too_early"
    clock.advance(H)
    ans = client.get("/parkingAccess", params=q, headers=dev).json()
    assert ans["allowed"] and ans["booking_id"] == bid
    put = {"parking_lot_id": world.lot_id, "plate": "AB123", "arrived_at": clock.now.isoformat()}
    assert client.put("/parkingAccess", json=put, headers=dev).status_code == 200
    clock.advance(2 * H)
    exit_q = {**q, "direction": "exit"}
    ans = client.get("/parkingAccess", params=exit_q, headers=dev).json()
    assert (ans["allowed"], ans["reason"], ans["amount_owed_cents"]) == (False, "payment_due", 250)
    put = {"parking_lot_id": world.lot_id, "plate": "AB123", "exited_at": clock.now.isoformat()}
    ans = client.put("/parkingAccess", json=put, headers=dev).json()
    assert ans["overstay_cents"] == 250 and ans["amount_owed_cents"] == 250
    rep = client.get(
        f"/analytics/lots/{world.lot_id}",
        headers=admin,
        params={"start": (clock.now - 5 * H).isoformat(), "end": clock.now.isoformat()},
    ).json()
    assert rep["bookings"] == 1 and rep["average_stay_minutes"] == 120.0
    csv = client.get(
        f"/analytics/lots/{world.lot_id}/export.csv",
        headers=world.auth("operator"),
        params={"start": (clock.now - 5 * H).isoformat(), "end": clock.now.isoformat()},
    )
    assert csv.status_code == 200 and csv.text.startswith("hour,occupied")
    changes = client.get(f"/lots/{world.lot_id}/changes", params={"since": 1}, headers=dev).json()
    assert [c["seq"] for c in changes["changes"]] == list(range(2, changes["latest_seq"] + 1))


def test_admin_manages_lots_operators_see_their_own(client: TestClient, world: World) -> None:
    admin, op = world.auth("admin"), world.auth("operator")
    r = client.post(
        "/admin/lots",
        headers=admin,
        json={
            "name": "New",
            "latitude": 1,
            "longitude": 2,
            "country": "nl",
            "city": "Delft",
            "spaces": {"car": 2},
        },
    )
    assert r.status_code == 201 and r.json()["country"] == "NL"
    new_id = r.json()["id"]
    assert [x["id"] for x in client.get("/admin/lots", headers=op).json()] == [world.lot_id]
    assert (
        client.patch(f"/admin/lots/{new_id}", headers=op, json={"hold_minutes": 5}).status_code
        == 404
    )
    r = client.patch(
        f"/admin/lots/{world.lot_id}",
        headers=op,
        json={"hold_minutes": 5, "early_exit_policy": "whole_hours"},
    )
    assert r.json()["hold_minutes"] == 5
    r = client.put(
        f"/admin/lots/{world.lot_id}/prices/car",
        headers=op,
        json={"hourly_cents": 300, "daily_cap_cents": 1000},
    )
    assert {"vehicle_type": "car", "hourly_cents": 300, "daily_cap_cents": 1000} in r.json()[
        "prices"
    ]
    assert (
        client.put(
            f"/admin/lots/{world.lot_id}/spaces",
            headers=op,
            json={"label": "Z9", "vehicle_type": "van"},
        ).status_code
        == 200
    )
    r = client.post(
        "/admin/users",
        headers=admin,
        json={"email": "x@y.test", "role": "operator", "lot_ids": [new_id]},
    )
    assert r.status_code == 201 and r.json()["token"]
    assert client.post("/admin/users", headers=op, json={"email": "z@y.test"}).status_code == 403
    assert client.get("/bookings").status_code == 401
