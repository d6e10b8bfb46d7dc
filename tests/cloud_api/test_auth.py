"""Every route that takes an object id: someone else's object is reported missing (404)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from devservices import World
from tests.support.cloud import Clock, TestClient
from tests.support.payments import pay_booking

H = timedelta(hours=1)
Request = Callable[[TestClient, World, str, Clock], Any]


def _booking(client: TestClient, world: World, clock: Clock) -> str:
    body = {
        "parking_lot_id": world.lot_id,
        "vehicle_plate": "OWN1",
        "vehicle_type": "car",
        "start_time": (clock.now + H).isoformat(),
        "end_time": (clock.now + 2 * H).isoformat(),
    }
    r = client.post("/bookings", json=body, headers=world.auth("alice"))
    assert r.status_code == 201
    return str(r.json()["booking_id"])


def _window(clock: Clock) -> dict[str, str]:
    return {"start": clock.now.isoformat(), "end": (clock.now + H).isoformat()}


# (name, outsiders who must get 404, insider who must not, request(client, world, id, clock))
BOOKING_ROUTES: list[tuple[str, list[str], str, Request]] = [
    (
        "get booking",
        ["bob", "other_operator", "other_device"],
        "alice",
        lambda c, w, i, k: c.get(f"/bookings/{i}", headers=w.auth(w.who)),
    ),
    (
        "cancel",
        ["bob", "other_operator", "other_device"],
        "alice",
        lambda c, w, i, k: c.post(f"/bookings/{i}/cancel", headers=w.auth(w.who)),
    ),
    (
        "extend",
        ["bob", "other_operator", "other_device"],
        "alice",
        lambda c, w, i, k: c.post(
            f"/bookings/{i}/extend",
            headers=w.auth(w.who),
            json={"end_time": (k.now + 3 * H).isoformat()},
        ),
    ),
    (
        "change plate",
        ["bob", "other_operator", "other_device"],
        "alice",
        lambda c, w, i, k: c.put(
            f"/bookings/{i}/plate", headers=w.auth(w.who), json={"vehicle_plate": "NEW1"}
        ),
    ),
]
LOT_ROUTES: list[tuple[str, list[str], str, Request]] = [
    (
        "lot changes",
        ["alice", "other_operator", "other_device"],
        "device",
        lambda c, w, i, k: c.get(f"/lots/{i}/changes", headers=w.auth(w.who)),
    ),
    (
        "access query",
        ["alice", "other_operator", "other_device"],
        "device",
        lambda c, w, i, k: c.get(
            "/parkingAccess", headers=w.auth(w.who), params={"plate": "OWN1", "parking_lot_id": i}
        ),
    ),
    (
        "access report",
        ["alice", "other_operator", "other_device"],
        "device",
        lambda c, w, i, k: c.put(
            "/parkingAccess",
            headers=w.auth(w.who),
            json={"parking_lot_id": i, "plate": "NOBODY1", "arrived_at": k.now.isoformat()},
        ),
    ),
    (
        "analytics",
        ["alice", "other_operator", "device"],
        "operator",
        lambda c, w, i, k: c.get(f"/analytics/lots/{i}", headers=w.auth(w.who), params=_window(k)),
    ),
    (
        "analytics csv",
        ["alice", "other_operator", "device"],
        "operator",
        lambda c, w, i, k: c.get(
            f"/analytics/lots/{i}/export.csv", headers=w.auth(w.who), params=_window(k)
        ),
    ),
    (
        "update lot",
        ["alice", "other_operator", "device"],
        "operator",
        lambda c, w, i, k: c.patch(
            f"/admin/lots/{i}", headers=w.auth(w.who), json={"hold_minutes": 10}
        ),
    ),
    (
        "set price",
        ["alice", "other_operator", "device"],
        "operator",
        lambda c, w, i, k: c.put(
            f"/admin/lots/{i}/prices/car",
            headers=w.auth(w.who),
            json={"hourly_cents": 1, "daily_cap_cents": 2},
        ),
    ),
    (
        "put space",
        ["alice", "other_operator", "device"],
        "operator",
        lambda c, w, i, k: c.put(
            f"/admin/lots/{i}/spaces", headers=w.auth(w.who), json={"label": "N1"}
        ),
    ),
]


def _ids(table: list[tuple[str, list[str], str, Request]]) -> list[str]:
    return [row[0] for row in table]


@pytest.mark.parametrize(
    ("name", "outsiders", "insider", "call"), BOOKING_ROUTES, ids=_ids(BOOKING_ROUTES)
)
def test_booking_routes(
    client: TestClient,
    session_factory: sessionmaker[Session],
    world: World,
    clock: Clock,
    name: str,
    outsiders: list[str],
    insider: str,
    call: Request,
) -> None:
    booking_id = _booking(client, world, clock)
    if name == "extend":  # an unpaid booking cannot be extended (409 payment_pending)
        with session_factory.begin() as s:
            pay_booking(s, booking_id, clock.now)
    for who in outsiders:
        world.who = who  # type: ignore[attr-defined]
        r = call(client, world, booking_id, clock)
        assert r.status_code == 404, (name, who, r.text)
    world.who = insider  # type: ignore[attr-defined]
    assert call(client, world, booking_id, clock).status_code == 200


@pytest.mark.parametrize(("name", "outsiders", "insider", "call"), LOT_ROUTES, ids=_ids(LOT_ROUTES))
def test_lot_routes(
    client: TestClient,
    world: World,
    clock: Clock,
    name: str,
    outsiders: list[str],
    insider: str,
    call: Request,
) -> None:
    for who in outsiders:
        world.who = who  # type: ignore[attr-defined]
        r = call(client, world, world.lot_id, clock)
        assert (r.status_code, r.json()["reason"]) == (404, "lot_not_found"), (name, who, r.text)
    world.who = insider  # type: ignore[attr-defined]
    r = call(client, world, world.lot_id, clock)
    assert r.status_code == 200 or r.json()["reason"] == "no_reservation", (name, r.text)


def test_missing_and_bad_tokens(client: TestClient, world: World) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        r = client.get("/bookings", headers=headers)
        assert (r.status_code, r.json()["reason"]) == (401, "unauthenticated")
