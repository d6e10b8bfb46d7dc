"""Booking access codes at the cloud: the route, the lot's keys on the feed, rotation, the email."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cloud_api.bookings import confirm_payment
from cloud_api.notifications import compose
from devservices import World
from parkgate_protocol import (
    CODE_SLACK,
    AccessCodeError,
    SigningKey,
    check_access_code,
    parse_changes_page,
)
from tests.support.cloud import Clock, TestClient

H = timedelta(hours=1)


def _book(client: TestClient, world: World, clock: Clock, who: str = "alice") -> str:
    body = {
        "parking_lot_id": world.lot_id,
        "vehicle_plate": "ab-123",
        "vehicle_type": "car",
        "start_time": (clock.now + H).isoformat(),
        "end_time": (clock.now + 3 * H).isoformat(),
    }
    r = client.post("/bookings", json=body, headers=world.auth(who))
    assert r.status_code == 201, r.text
    return str(r.json()["booking_id"])


def _confirm(client: TestClient, booking_id: str, clock: Clock) -> None:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        confirm_payment(s, booking_id, now=clock.now)
        s.commit()


def _snapshot(client: TestClient, world: World) -> Any:
    r = client.get(
        f"/lots/{world.lot_id}/changes",
        params={"since": 0, "snapshot": "true"},
        headers=world.auth("device"),
    )
    assert r.status_code == 200, r.text
    return parse_changes_page(r.content)


def _keys(page: Any) -> list[SigningKey]:
    return [SigningKey(k.kid, k.secret_bytes(), k.retires_at) for k in page.access_keys]


def test_the_owner_gets_a_code_the_lots_gate_verifies(
    client: TestClient, world: World, clock: Clock
) -> None:
    bid = _book(client, world, clock)
    r = client.get(f"/bookings/{bid}/access-code", headers=world.auth("alice"))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["qr_svg"].startswith("<svg") or "<svg" in answer["qr_svg"][:200]
    code = answer["code"]
    assert len(code) < 80 and code.startswith(f"v1.{world.lot_id}.{bid}.")
    page = _snapshot(client, world)
    verified = check_access_code(
        code, lot_id=str(world.lot_id), keys=_keys(page), now=clock.now + 2 * H
    )
    assert verified.booking_id == bid
    assert verified.expires_at == clock.now + 3 * H + CODE_SLACK
    # the same code is refused at the other lot (its own reason) and once past its validity
    for lot, when, reason in (
        (str(world.other_lot_id), clock.now, "code_other_lot"),
        (str(world.lot_id), clock.now + 3 * H + CODE_SLACK + timedelta(seconds=1), "code_expired"),
    ):
        try:
            check_access_code(code, lot_id=lot, keys=_keys(page), now=when)
        except AccessCodeError as exc:
            assert exc.reason == reason
        else:
            raise AssertionError(f"{reason}: accepted")


def test_nobody_else_gets_the_code_and_a_cancelled_booking_has_none(
    client: TestClient, world: World, clock: Clock
) -> None:
    bid = _book(client, world, clock)
    for who in ("bob", "other_operator", "device"):
        r = client.get(f"/bookings/{bid}/access-code", headers=world.auth(who))
        assert r.status_code in (403, 404), (who, r.text)
        assert "v1." not in r.text
    assert client.get(f"/bookings/{bid}/access-code", headers=world.auth("operator")).status_code
    client.post(f"/bookings/{bid}/cancel", headers=world.auth("alice"))
    r = client.get(f"/bookings/{bid}/access-code", headers=world.auth("alice"))
    assert (r.status_code, r.json()["reason"]) == (409, "code_unavailable")


def test_the_keys_travel_on_the_feed_and_rotation_keeps_the_old_one_until_it_retires(
    client: TestClient, world: World, clock: Clock
) -> None:
    bid = _book(client, world, clock)
    dev = world.auth("device")
    assert _snapshot(client, world).access_keys == []  # no key until a code is asked for
    old_code = client.get(f"/bookings/{bid}/access-code", headers=world.auth("alice")).json()[
        "code"
    ]
    changes = client.get(f"/lots/{world.lot_id}/changes", params={"since": 1}, headers=dev)
    pushed = [c for c in changes.json()["changes"] if c["kind"] == "access_keys"]
    assert len(pushed) == 1 and [k["kid"] for k in pushed[0]["access_keys"]] == ["k1"]

    r = client.post(
        f"/admin/lots/{world.lot_id}/access-keys/rotate",
        json={"retire_old_after_minutes": 60},
        headers=world.auth("admin"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["kid"] == "k2"
    new_code = client.get(f"/bookings/{bid}/access-code", headers=world.auth("alice")).json()[
        "code"
    ]
    assert ".k2." in new_code and ".k1." in old_code
    page = _snapshot(client, world)
    assert [(k.kid, k.retires_at) for k in page.access_keys] == [
        ("k2", None),
        ("k1", clock.now + H),
    ]
    lot = str(world.lot_id)
    for code in (old_code, new_code):  # both open during the overlap
        check_access_code(code, lot_id=lot, keys=_keys(page), now=clock.now)
    try:  # after the old key's retire time, its codes are forged as far as the gate knows
        check_access_code(old_code, lot_id=lot, keys=_keys(page), now=clock.now + H)
    except AccessCodeError as exc:
        assert exc.reason == "code_invalid"
    else:
        raise AssertionError("a retired key still verifies")
    # another lot's operator cannot rotate this lot's key; a customer neither
    for who in ("other_operator", "alice"):
        r = client.post(
            f"/admin/lots/{world.lot_id}/access-keys/rotate", json={}, headers=world.auth(who)
        )
        assert r.status_code in (403, 404)
    r = client.post(
        f"/admin/lots/{world.lot_id}/access-keys/rotate",
        json={"retire_old_after_minutes": -1},
        headers=world.auth("admin"),
    )
    assert r.status_code == 422


def test_the_secret_is_not_in_reprs_or_logs(
    client: TestClient, world: World, clock: Clock, caplog: Any
) -> None:
    caplog.set_level("DEBUG")
    bid = _book(client, world, clock)
    client.get(f"/bookings/{bid}/access-code", headers=world.auth("alice"))
    page = _snapshot(client, world)
    secret = page.access_keys[0].secret.get_secret_value()
    assert secret not in repr(page) and secret not in repr(_keys(page))
    assert secret not in caplog.text


def test_the_confirmation_email_carries_the_code_and_its_qr(
    client: TestClient, world: World, clock: Clock
) -> None:
    bid = _book(client, world, clock)
    _confirm(client, bid, clock)
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        from sqlalchemy import select

        from cloud_api.models import OutboxMessage

        payloads = [
            m.payload
            for m in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notify.email"))
        ]
    confirmed = [p for p in payloads if p["template"] == "payment_confirmed"]
    assert len(confirmed) == 1
    code = confirmed[0]["access_code"]
    message = compose(confirmed[0], sender="gate@example.test")
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and code in text.get_content()
    assert html is not None and "<svg" in html.get_content() and code in html.get_content()
    page = _snapshot(client, world)
    assert check_access_code(code, lot_id=str(world.lot_id), keys=_keys(page), now=clock.now)
