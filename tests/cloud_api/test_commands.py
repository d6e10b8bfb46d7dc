"""``POST /lots/{id}/commands/open`` and ``/commands/resync``: operators of that lot only (another
lot's operator gets 404, customers and devices 403); each command is audited in ``event_log``."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cloud_api.lot_sync import LotCommand
from cloud_api.models import EventLog
from devservices import World
from tests.support.cloud import TestClient

OPEN = {"lane_id": "exit-1", "reason": "pay station out of order", "ttl_seconds": 30}


def test_an_operator_of_the_lot_opens_a_lane_audited_with_a_short_expiry(
    client: TestClient, world: World, session_factory: object
) -> None:
    r = client.post(
        f"/lots/{world.lot_id}/commands/open", json=OPEN, headers=world.auth("operator")
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["kind"] == "open_lane" and body["lane_id"] == "exit-1"
    assert body["lot_id"] == world.lot_id
    with session_factory() as s:  # type: ignore[operator]
        command = s.get(LotCommand, body["command_id"])
        assert command is not None and command.published_at is None  # the relay's outbox
        assert command.actor == "op@example.test"
        assert command.expires_at - command.created_at == timedelta(seconds=30)
        [audit] = s.scalars(select(EventLog).where(EventLog.kind == "command.open_lane"))
    assert audit.lot_id == world.lot_id
    assert audit.payload["command_id"] == body["command_id"]
    assert audit.payload["actor"] == "op@example.test"
    assert audit.payload["reason"] == OPEN["reason"]


def test_resync_by_an_operator_of_the_lot(
    client: TestClient, world: World, session_factory: object
) -> None:
    url = f"/lots/{world.lot_id}/commands/resync"
    r = client.post(url, json={"full": False}, headers=world.auth("operator"))
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "resync" and r.json()["expires_at"] is None
    with session_factory() as s:  # type: ignore[operator]
        command = s.get(LotCommand, r.json()["command_id"])
        assert command is not None and command.full is False
        assert s.scalars(select(EventLog).where(EventLog.kind == "command.resync")).one()


def test_only_staff_of_that_lot_may_command_its_gate(
    client: TestClient, world: World, session_factory: object
) -> None:
    for path, body in (("open", OPEN), ("resync", {})):
        url = f"/lots/{world.lot_id}/commands/{path}"
        assert client.post(url, json=body, headers=world.auth("other_operator")).status_code == 404
        assert client.post(url, json=body, headers=world.auth("alice")).status_code == 403
        assert client.post(url, json=body, headers=world.auth("device")).status_code == 403
        assert client.post(url, json=body).status_code == 401
        missing = f"/lots/999999/commands/{path}"
        assert client.post(missing, json=body, headers=world.auth("operator")).status_code == 404
    with session_factory() as s:  # type: ignore[operator]
        assert s.scalars(select(LotCommand)).all() == []  # nothing was issued
    long_ttl = {**OPEN, "ttl_seconds": 3600}  # an open must stay short-lived
    url = f"/lots/{world.lot_id}/commands/open"
    assert client.post(url, json=long_ttl, headers=world.auth("operator")).status_code == 422
