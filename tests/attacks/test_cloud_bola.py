"""Broken object-level authorisation, route by route: nobody reaches another's booking or a lot
they do not belong to — customer A vs B, lot 1's operator and device vs lot 2 — and a refused
request changes nothing. Every route of the OpenAPI schema that names a lot or a booking must be
in the tables below (a new route without an attack case fails the first test)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from devservices import World
from tests.attacks.conftest import dump
from tests.support.cloud import Clock, TestClient
from tests.support.payments import pay_booking

H = timedelta(hours=1)
Attack = Callable[[World, Clock, str], dict[str, Any]]  # → client.request keyword arguments


def _window(clock: Clock) -> dict[str, str]:
    return {"start": clock.now.isoformat(), "end": (clock.now + H).isoformat()}


def _entry() -> dict[str, Any]:
    return {"plate": "EVIL1", "kind": "allow"}


# (method, path template) → the request an attacker sends against the victim's lot (``i``)
LOT_ATTACKS: dict[tuple[str, str], Attack] = {
    ("POST", "/admin/lots/{lot_id}/access-keys/rotate"): lambda w, k, i: {
        "json": {"retire_old_after_minutes": 60}
    },
    ("GET", "/lots/{lot_id}/changes"): lambda w, k, i: {},
    ("GET", "/analytics/lots/{lot_id}"): lambda w, k, i: {"params": _window(k)},
    ("GET", "/analytics/lots/{lot_id}/export.csv"): lambda w, k, i: {"params": _window(k)},
    ("PATCH", "/admin/lots/{lot_id}"): lambda w, k, i: {"json": {"hold_minutes": 1}},
    ("PUT", "/admin/lots/{lot_id}/prices/{vehicle_type}"): lambda w, k, i: {
        "json": {"hourly_cents": 1, "daily_cap_cents": 2}
    },
    ("PUT", "/admin/lots/{lot_id}/spaces"): lambda w, k, i: {"json": {"label": "EVIL"}},
    ("POST", "/admin/lots/{lot_id}/members/{user_id}"): lambda w, k, i: {},
    ("POST", "/lots/{lot_id}/commands/open"): lambda w, k, i: {
        "json": {"lane_id": "in-1", "reason": "let my friend in"}
    },
    ("POST", "/lots/{lot_id}/commands/resync"): lambda w, k, i: {"json": {"full": True}},
    ("GET", "/lots/{lot_id}/gate-status"): lambda w, k, i: {},
    ("GET", "/lots/{lot_id}/policy"): lambda w, k, i: {},
    ("PUT", "/lots/{lot_id}/policy"): lambda w, k, i: {"json": {"anti_passback": "off"}},
    ("POST", "/lots/{lot_id}/access-list"): lambda w, k, i: {"json": _entry()},
    ("GET", "/lots/{lot_id}/access-list"): lambda w, k, i: {},
    ("DELETE", "/lots/{lot_id}/access-list/{entry_id}"): lambda w, k, i: {},
    ("POST", "/lots/{lot_id}/access-list/import"): lambda w, k, i: {
        "content": b"plate,kind\nEVIL2,allow\n",
        "headers": {"Content-Type": "text/csv"},
        "params": {"mode": "replace"},
    },
    ("GET", "/lots/{lot_id}/audit"): lambda w, k, i: {},
    ("POST", "/admin/lots/{lot_id}/device-token"): lambda w, k, i: {},
    ("POST", "/admin/lots/{lot_id}/device-token/revoke"): lambda w, k, i: {},
    ("GET", "/parkingAccess"): lambda w, k, i: {"params": {"plate": "AB123", "parking_lot_id": i}},
    ("PUT", "/parkingAccess"): lambda w, k, i: {
        "json": {"parking_lot_id": i, "plate": "AB123", "arrived_at": k.now.isoformat()}
    },
}
PUBLIC_LOT_ROUTES = {  # public on purpose: lot listings, and any customer books at any lot
    ("GET", "/parkingLots/{lot_id}"),
    ("GET", "/parkingLots/{lot_id}/availability"),
    ("POST", "/bookings"),
    # pay by plate: public (a driver at the exit has no account), rate-limited, answers only the
    # amount and entry time; the session id is the capability and must belong to the lot in the
    # path (tests/cloud_api/test_stays.py: another lot's session is 404, nothing changed)
    ("GET", "/lots/{lot_id}/sessions"),
    ("POST", "/lots/{lot_id}/sessions/{session_id}/pay"),
}
BOOKING_ATTACKS: dict[tuple[str, str], Attack] = {
    ("GET", "/bookings/{booking_id}"): lambda w, k, i: {},
    ("POST", "/bookings/{booking_id}/cancel"): lambda w, k, i: {},
    ("POST", "/bookings/{booking_id}/extend"): lambda w, k, i: {
        "json": {"end_time": (k.now + 5 * H).isoformat()}
    },
    ("PUT", "/bookings/{booking_id}/plate"): lambda w, k, i: {"json": {"vehicle_plate": "EVIL3"}},
    ("GET", "/bookings/{booking_id}/access-code"): lambda w, k, i: {},
}


def _url(template: str, lot_id: int, booking_id: str = "") -> str:
    return (
        template.replace("{lot_id}", str(lot_id))
        .replace("{booking_id}", booking_id)
        .replace("{vehicle_type}", "car")
        .replace("{user_id}", "1")
        .replace("{entry_id}", "1")
    )


def _names_an_object(operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """A lot or booking id in the path, the query or the JSON body's fields."""
    names = {p["name"] for p in operation.get("parameters", [])}
    content = operation.get("requestBody", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    if ref:
        names |= set(schemas[ref.rpartition("/")[2]].get("properties", {}))
    return bool(names & {"lot_id", "booking_id", "parking_lot_id"})


def test_every_route_naming_a_lot_or_booking_is_attacked(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if _names_an_object(operation, schema["components"]["schemas"])
    }
    covered = set(LOT_ATTACKS) | PUBLIC_LOT_ROUTES | set(BOOKING_ATTACKS)
    assert routes - covered == set(), "add an attack case for these routes"
    assert covered - routes == set(), "these routes are gone: drop their cases"


def _seed_victim_lot(client: TestClient, world: World) -> None:
    """Lot 2 gets an access-list entry (entry 1) for the DELETE attack to aim at."""
    r = client.post(
        f"/lots/{world.other_lot_id}/access-list",
        json={"plate": "VICTIM1", "kind": "allow"},
        headers=world.auth("other_operator"),
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("method", "path"), sorted(LOT_ATTACKS), ids=lambda x: str(x))
def test_lot_1_staff_and_customers_cannot_reach_lot_2(
    client: TestClient,
    world: World,
    clock: Clock,
    sessions: sessionmaker[Session],
    method: str,
    path: str,
) -> None:
    _seed_victim_lot(client, world)
    victim = world.other_lot_id
    request = LOT_ATTACKS[(method, path)](world, clock, str(victim))
    before = dump(sessions)
    for attacker in ("operator", "device", "alice"):
        headers = {**request.get("headers", {}), **world.auth(attacker)}
        r = client.request(method, _url(path, victim), **{**request, "headers": headers})
        assert r.status_code in (403, 404), (attacker, r.status_code, r.text)
        assert dump(sessions) == before, (attacker, "a refused request changed the database")
    # the same request is well formed: an admin gets past validation (no 422), so the refusals
    # above were authorisation, not a bad body
    headers = {**request.get("headers", {}), **world.auth("admin")}
    r = client.request(method, _url(path, victim), **{**request, "headers": headers})
    assert r.status_code != 422 or r.json()["reason"] != "invalid_request", r.text


def _alices_booking(client: TestClient, world: World, clock: Clock) -> str:
    body = {
        "parking_lot_id": world.lot_id,
        "vehicle_plate": "AB123",
        "vehicle_type": "car",
        "start_time": (clock.now + H).isoformat(),
        "end_time": (clock.now + 3 * H).isoformat(),
    }
    r = client.post("/bookings", json=body, headers=world.auth("alice"))
    assert r.status_code == 201, r.text
    return str(r.json()["booking_id"])


@pytest.mark.parametrize(("method", "path"), sorted(BOOKING_ATTACKS), ids=lambda x: str(x))
def test_nobody_else_reaches_a_customers_booking(
    client: TestClient,
    world: World,
    clock: Clock,
    sessions: sessionmaker[Session],
    method: str,
    path: str,
) -> None:
    booking = _alices_booking(client, world, clock)
    if path.endswith("/extend"):  # only a paid booking can be extended (else 409 for alice too)
        with sessions.begin() as s:
            pay_booking(s, booking, clock.now)
    request = BOOKING_ATTACKS[(method, path)](world, clock, booking)
    before = dump(sessions)
    for attacker in ("bob", "other_operator", "other_device"):
        r = client.request(
            method, _url(path, world.lot_id, booking), **request, headers=world.auth(attacker)
        )
        assert r.status_code == 404, (attacker, r.status_code, r.text)
        assert dump(sessions) == before, (attacker, "a refused request changed the database")
    r = client.request(
        method, _url(path, world.lot_id, booking), **request, headers=world.auth("alice")
    )
    assert r.status_code == 200, r.text


def test_a_customer_lists_only_their_own_bookings(
    client: TestClient, world: World, clock: Clock
) -> None:
    booking = _alices_booking(client, world, clock)
    mine = client.get("/bookings", headers=world.auth("alice")).json()
    theirs = client.get("/bookings", headers=world.auth("bob")).json()
    assert [b["booking_id"] for b in mine] == [booking] and theirs == []
