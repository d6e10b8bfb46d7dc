"""One lot's broker login against another lot and against the cloud, on a real Mosquitto running
the shipped config and ACL, with the cloud's real relay and ingest connected (``CloudStack``).

Lot A holds valid credentials (a stolen or tampered gate). It must not read lot B's
reservations, commands or acks, publish lot B's events or status, nor forge the cloud's side;
and, whatever client id it sends, it must not kick lot B or the cloud's relay or ingest off the
broker or take over their saved sessions (issue 14: without ``use_username_as_clientid`` the
client id ``B`` did exactly that).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import parkgate_protocol as p
from devservices import CloudStack, wait_for
from parkgate_protocol import Channel
from tests.support.mqtt import NOT_AUTHORIZED, Peer

pytestmark = pytest.mark.integration

HOST = socket.gethostname()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[CloudStack]:
    cloud = CloudStack(tmp_path / "cloud", lots=2).start()
    yield cloud
    cloud.stop()


def lot_peer(stack: CloudStack, index: int, **options: object) -> Peer:
    device = stack.devices[stack.lot_ids[index]]
    peer = Peer(stack.broker, device.mqtt_username, device.mqtt_password, **options)  # type: ignore[arg-type]
    assert peer.connect_rc is not None and not peer.connect_rc.is_failure
    return peer


def own_event(lot_id: int, event_id: str) -> bytes:
    event = p.GateEvent(
        event_id=event_id,
        lot_id=str(lot_id),
        kind=p.GateEventKind.HEALTH,
        occurred_at=datetime.now(UTC),
    )
    return p.encode(event)


def still_works(peer: Peer, lot_id: int) -> None:
    """A round trip on ``peer``'s connection: the broker answers its publish."""
    status = p.encode(p.Status(lot_id=str(lot_id), state="online"))
    assert not peer.publish(p.topic(str(lot_id), "status"), status).is_failure


@pytest.mark.parametrize("channel", ["events", "status", "reservations", "commands", "acks"])
def test_lot_a_cannot_publish_on_lot_bs_topics(stack: CloudStack, channel: Channel) -> None:
    a_id, b_id = stack.lot_ids
    lot_a = lot_peer(stack, 0)
    try:
        payload = own_event(b_id, f"forged-{channel}")
        assert lot_a.publish(p.topic(str(b_id), channel), payload).value == NOT_AUTHORIZED
        # the ingest stores what lot A may send (its own event) and never the forgery
        assert not lot_a.publish(p.topic(str(a_id), "events"), own_event(a_id, "own")).is_failure
        wait_for(lambda: "own" in stack.event_ids(), what="lot A's own event stored")
        assert stack.event_ids() == ["own"]
    finally:
        lot_a.close()


def test_lot_a_reads_nothing_of_lot_b_whatever_it_subscribes(stack: CloudStack) -> None:
    """Lot A subscribes to lot B's topics, to every lot's, and joins the ingest's shared
    subscription group; then lot B gets a reservation and publishes an event. Lot A sees only
    its own reservation (sent after B's); the ingest still stores B's event."""
    a_id, b_id = stack.lot_ids
    lot_a, lot_b = lot_peer(stack, 0), lot_peer(stack, 1)
    try:
        filters = [
            *(p.topic(str(b_id), ch) for ch in ("reservations", "commands", "acks", "events")),
            "parkgate/v1/lots/+/reservations",
            "parkgate/v1/#",
            "#",
            p.shared_subscription("events"),  # the ingest's own group name
            "$share/thief/parkgate/v1/lots/+/events",
        ]
        for name in filters:
            assert lot_a.subscribe(name).value in (1, NOT_AUTHORIZED)
        assert lot_a.subscribe(p.topic(str(a_id), "reservations")).value == 1
        assert lot_b.subscribe(p.topic(str(b_id), "reservations")).value == 1

        start = datetime.now(UTC) + timedelta(hours=1)
        stack.book(b_id, "BBB111", start)
        wait_for(lambda: len(lot_b.messages) == 1, what="lot B's reservation relayed")
        assert not lot_b.publish(p.topic(str(b_id), "events"), own_event(b_id, "b1")).is_failure
        wait_for(lambda: "b1" in stack.event_ids(), what="lot B's event stored by the ingest")
        stack.book(a_id, "AAA111", start)
        wait_for(lambda: len(lot_a.messages) >= 1, what="lot A's own reservation relayed")
        assert {name for name, _ in lot_a.messages} == {p.topic(str(a_id), "reservations")}
        assert all(b"BBB111" not in payload for _, payload in lot_a.messages)
    finally:
        lot_a.close()
        lot_b.close()


def test_lot_a_cannot_kick_lot_b_off_with_lot_bs_client_id(stack: CloudStack) -> None:
    a_id, b_id = stack.lot_ids
    lot_b = lot_peer(stack, 1, client_id=str(b_id))
    impostor = lot_peer(stack, 0, client_id=str(b_id))
    try:
        still_works(impostor, a_id)  # it is connected, as lot A (its own topics work) ...
        still_works(lot_b, b_id)  # ... and lot B was never dropped
        assert lot_b.disconnects == []
        assert p.topic(str(b_id), "status") not in {name for name, _ in impostor.messages}
    finally:
        impostor.close()
        lot_b.close()


def test_lot_a_cannot_take_over_lot_bs_saved_session(stack: CloudStack) -> None:
    """Lot B's persistent session holds a queued reservation while B is offline; lot A
    resuming "client id B" gets a fresh session of its own and nothing of B's queue, and B,
    back, finds its session and the reservation."""
    a_id, b_id = stack.lot_ids
    lot_b = lot_peer(stack, 1, client_id=str(b_id), session_expiry=300)
    assert lot_b.subscribe(p.topic(str(b_id), "reservations")).value == 1
    lot_b.close()
    stack.book(b_id, "BBB222", datetime.now(UTC) + timedelta(hours=1))
    wait_for(lambda: stack.relay.stats.acknowledged >= 1, what="the relay's PUBACK for lot B")

    impostor = lot_peer(stack, 0, client_id=str(b_id), session_expiry=300)
    try:
        still_works(impostor, a_id)
        assert impostor.session_present is False
        assert impostor.messages == []
    finally:
        impostor.close()
    back = lot_peer(stack, 1, client_id=str(b_id), session_expiry=300)
    try:
        assert back.session_present is True
        wait_for(lambda: len(back.messages) == 1, what="lot B's queued reservation")
        assert b"BBB222" in back.messages[0][1]
    finally:
        back.close()


@pytest.mark.parametrize(
    "client_id", ["cloud-relay", "cloud-ingest", f"cloud-{HOST}-relay", f"cloud-{HOST}-ingest"]
)
def test_lot_a_cannot_kick_the_clouds_relay_or_ingest_off(
    stack: CloudStack, client_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Lot A connects with the cloud's client ids (today's logins, and the guessable ids of
    before); the relay still delivers lot A a reservation and the ingest still stores its event,
    and neither ever logged a disconnect."""
    a_id, _ = stack.lot_ids
    caplog.set_level(logging.WARNING, logger="cloud_api.lot_sync")
    impostor = lot_peer(stack, 0, client_id=client_id)
    try:
        assert impostor.subscribe(p.topic(str(a_id), "reservations")).value == 1
        stack.book(a_id, "AAA333", datetime.now(UTC) + timedelta(hours=1))
        wait_for(lambda: len(impostor.messages) == 1, what="the relay's reservation for lot A")
        event = own_event(a_id, "after-the-attempt")
        assert not impostor.publish(p.topic(str(a_id), "events"), event).is_failure
        wait_for(lambda: "after-the-attempt" in stack.event_ids(), what="the ingest storing it")
        assert stack.relay.connected and stack.ingest.connected.is_set()
        assert impostor.disconnects == []
        assert [r.message for r in caplog.records if "disconnected" in r.message] == []
    finally:
        impostor.close()
