"""Ingest against a real broker: malformed messages are dead-lettered with the reason and the
consumer keeps going; duplicates are stored once; a lot cannot post for another lot; status."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

import parkgate_protocol as p
from cloud_api.lot_sync import GateEventRecord, Ingest, IngestDeadLetter, LotStatus
from cloud_api.settings import BrokerSettings
from devservices import (
    CLOUD_PASSWORD,
    CLOUD_USERS,
    MosquittoInstance,
    World,
    secured_broker,
    wait_for,
)
from tests.support.mqtt import Peer

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path, world: World) -> Iterator[tuple[MosquittoInstance, Path]]:
    users = {**CLOUD_USERS, str(world.lot_id): "pw", str(world.other_lot_id): "pw"}
    with secured_broker(tmp_path / "mqtt", users) as instance:
        yield instance, tmp_path / "mqtt" / "passwd"


def event(lot: int | str, **extra: object) -> bytes:
    ev = p.GateEvent(
        event_id=uuid.uuid4().hex,
        lot_id=str(lot),
        kind=p.GateEventKind.DENIED,
        reason="no_reservation",
        occurred_at=datetime.now(UTC),
        **extra,
    )
    return p.encode(ev)


def test_malformed_are_dead_lettered_and_the_consumer_keeps_going(
    broker: tuple[MosquittoInstance, Path], session_factory: object, world: World
) -> None:
    mqtt_broker, _ = broker
    settings = BrokerSettings(host=mqtt_broker.host, port=mqtt_broker.port, password=CLOUD_PASSWORD)
    ingest = Ingest(session_factory, settings).start()  # type: ignore[arg-type]
    lot = Peer(mqtt_broker, str(world.lot_id), "pw")
    cloud = Peer(mqtt_broker, "cloud", CLOUD_PASSWORD)
    try:
        wait_for(ingest.connected.is_set, what="ingest connected")
        events = p.topic(str(world.lot_id), "events")
        good = event(world.lot_id)
        bad = {
            b"not json": "bad_json",
            b"[1]": "not_an_object",
            b'{"v": 9}': "unsupported_version",
            json.dumps({"v": 1, "event_id": "x", "lot_id": str(world.lot_id)}).encode(): "invalid",
            event(world.other_lot_id): "wrong_lot",  # lot A posting as lot B
        }
        for payload in bad:
            assert not lot.publish(events, payload).is_failure
        assert not lot.publish(events, good).is_failure
        assert not lot.publish(events, good).is_failure  # redelivered: stored once
        # the cloud account could publish anywhere: a foreign lot's event on lot A's topic
        assert not cloud.publish(events, event(world.other_lot_id)).is_failure
        status = p.Status(
            lot_id=str(world.lot_id),
            state="online",
            at=datetime.now(UTC),
            outbox_depth=3,
            last_applied_seq=7,
        )
        assert not lot.publish(p.topic(str(world.lot_id), "status"), p.encode(status)).is_failure
        wait_for(lambda: ingest.stats.statuses == 1, what="status stored")
        wait_for(lambda: ingest.stats.events + ingest.stats.duplicates == 2, what="events")
    finally:
        lot.close()
        cloud.close()
        ingest.stop()
    with session_factory() as s:  # type: ignore[operator]
        reasons = sorted(d.reason for d in s.scalars(select(IngestDeadLetter)))
        stored = list(s.scalars(select(GateEventRecord)))
        last = s.get(LotStatus, world.lot_id)
    assert reasons == sorted([*bad.values(), "wrong_lot"])
    assert [r.event_id for r in stored] == [p.parse_gate_event(good).event_id]
    assert last is not None and last.outbox_depth == 3 and last.last_applied_seq == 7


def test_the_ingest_subscription_survives_a_broker_restart_while_the_ingest_is_away(
    broker: tuple[MosquittoInstance, Path], session_factory: object, world: World
) -> None:
    """The default (unshared) subscription is restored by Mosquitto after a restart, so events
    published before the ingest is back are queued for it, not dropped with PUBACK 0x10."""
    mqtt_broker, _ = broker
    settings = BrokerSettings(host=mqtt_broker.host, port=mqtt_broker.port, password=CLOUD_PASSWORD)
    first = Ingest(session_factory, settings).start()  # type: ignore[arg-type]
    wait_for(first.connected.is_set, what="ingest connected")
    first.stop()  # the persistent session (and its subscription) stays at the broker
    mqtt_broker.restart()
    lot = Peer(mqtt_broker, str(world.lot_id), "pw")
    queued = event(world.lot_id)
    try:
        code = lot.publish(p.topic(str(world.lot_id), "events"), queued)
        assert code.value == 0  # Success; 0x10 would mean the broker dropped it
    finally:
        lot.close()
    second = Ingest(session_factory, settings).start()  # type: ignore[arg-type]
    try:
        wait_for(lambda: second.stats.events == 1, what="queued event stored")
    finally:
        second.stop()
    with session_factory() as s:  # type: ignore[operator]
        assert s.get(GateEventRecord, p.parse_gate_event(queued).event_id) is not None


def test_stored_and_duplicate_events_are_confirmed_to_their_lot_after_the_commit(
    broker: tuple[MosquittoInstance, Path], session_factory: object, world: World
) -> None:
    """``EventAck`` on the lot's ``acks`` topic (readable with the lot's own credentials) lists
    what the cloud stored or already had; dead-lettered events are never confirmed."""
    mqtt_broker, _ = broker
    settings = BrokerSettings(host=mqtt_broker.host, port=mqtt_broker.port, password=CLOUD_PASSWORD)
    ingest = Ingest(session_factory, settings).start()  # type: ignore[arg-type]
    lot = Peer(mqtt_broker, str(world.lot_id), "pw")
    acks_topic = p.topic(str(world.lot_id), "acks")

    def acked() -> list[p.EventAck]:
        return [p.parse_event_ack(m) for t, m in list(lot.messages) if t == acks_topic]

    try:
        wait_for(ingest.connected.is_set, what="ingest connected")
        assert lot.subscribe(acks_topic).value == 1
        events = p.topic(str(world.lot_id), "events")
        first, second = event(world.lot_id), event(world.lot_id)
        for payload in (first, second, b"not json", event(world.other_lot_id)):
            assert not lot.publish(events, payload).is_failure
        ids = {p.parse_gate_event(e).event_id for e in (first, second)}
        wait_for(lambda: {i for a in acked() for i in a.event_ids} == ids, what="both acked")
        before = len(acked())
        assert not lot.publish(events, first).is_failure  # redelivered: acked again
        wait_for(lambda: len(acked()) > before, what="the duplicate acked")
        assert acked()[-1].event_ids == [p.parse_gate_event(first).event_id]
        assert all(a.lot_id == str(world.lot_id) for a in acked())
        assert ingest.stats.duplicates == 1 and ingest.stats.dead_letters == 2
    finally:
        lot.close()
        ingest.stop()
