"""Tokens expire, can be renewed and revoked by their owner; an admin rotates a lot's device
token (the old one stops at once)."""

from __future__ import annotations

from datetime import timedelta

from devservices import World
from tests.support.cloud import Clock, TestClient


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_customer(client: TestClient, world: World, email: str = "new@example.test") -> str:
    r = client.post("/admin/users", json={"email": email}, headers=world.auth("admin"))
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_an_issued_token_expires_after_the_lifetime(
    client: TestClient, world: World, clock: Clock
) -> None:
    token = _new_customer(client, world)
    assert client.get("/bookings", headers=_bearer(token)).status_code == 200  # now cached
    clock.advance(timedelta(days=29))
    assert client.get("/bookings", headers=_bearer(token)).status_code == 200
    clock.advance(timedelta(days=1, seconds=1))  # default lifetime: 30 days
    r = client.get("/bookings", headers=_bearer(token))
    assert (r.status_code, r.json()["reason"]) == (401, "unauthenticated")


def test_a_renewed_token_outlives_the_old_one(
    client: TestClient, world: World, clock: Clock
) -> None:
    old = _new_customer(client, world)
    clock.advance(timedelta(days=20))
    r = client.post("/auth/tokens", headers=_bearer(old))
    assert r.status_code == 201
    new = r.json()["token"]
    clock.advance(timedelta(days=20))
    assert client.get("/bookings", headers=_bearer(old)).status_code == 401
    assert client.get("/bookings", headers=_bearer(new)).status_code == 200


def test_revoking_this_token_leaves_the_others(client: TestClient, world: World) -> None:
    first = _new_customer(client, world)
    second = client.post("/auth/tokens", headers=_bearer(first)).json()["token"]
    assert client.get("/bookings", headers=_bearer(first)).status_code == 200  # cached
    r = client.post("/auth/tokens/revoke", json={}, headers=_bearer(first))
    assert r.json() == {"revoked": 1}
    assert client.get("/bookings", headers=_bearer(first)).status_code == 401
    assert client.get("/bookings", headers=_bearer(second)).status_code == 200


def test_revoking_all_stops_every_token_of_the_caller(client: TestClient, world: World) -> None:
    first = _new_customer(client, world)
    second = client.post("/auth/tokens", headers=_bearer(first)).json()["token"]
    assert client.get("/bookings", headers=_bearer(second)).status_code == 200  # cached
    r = client.post("/auth/tokens/revoke", json={"scope": "all"}, headers=_bearer(first))
    assert r.json() == {"revoked": 2}
    for token in (first, second):
        assert client.get("/bookings", headers=_bearer(token)).status_code == 401
    assert client.get("/bookings", headers=world.auth("alice")).status_code == 200


def test_rotating_a_device_token_stops_the_old_one(client: TestClient, world: World) -> None:
    feed = f"/lots/{world.lot_id}/changes"
    assert client.get(feed, headers=world.auth("device")).status_code == 200
    r = client.post(f"/admin/lots/{world.lot_id}/device-token", headers=world.auth("admin"))
    assert r.status_code == 201, r.text
    new = r.json()["token"]
    assert client.get(feed, headers=world.auth("device")).status_code == 401
    assert client.get(feed, headers=_bearer(new)).status_code == 200
    other = f"/lots/{world.other_lot_id}/changes"  # the other lot's gate is untouched
    assert client.get(other, headers=world.auth("other_device")).status_code == 200


def test_revoking_a_device_token_cuts_the_gate_off(client: TestClient, world: World) -> None:
    feed = f"/lots/{world.lot_id}/changes"
    r = client.post(f"/admin/lots/{world.lot_id}/device-token/revoke", headers=world.auth("admin"))
    assert r.json() == {"revoked": 1}
    assert client.get(feed, headers=world.auth("device")).status_code == 401


def test_only_an_admin_rotates_device_tokens(client: TestClient, world: World) -> None:
    for who in ("operator", "device", "alice"):
        for suffix in ("", "/revoke"):
            path = f"/admin/lots/{world.lot_id}/device-token{suffix}"
            assert client.post(path, headers=world.auth(who)).status_code == 403, (who, suffix)
    assert client.get(f"/lots/{world.lot_id}/changes", headers=world.auth("device")).is_success
