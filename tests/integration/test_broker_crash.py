"""Regression: a broker crash loses events it already PUBACKed; the cloud's ``EventAck`` closes it.

Mosquitto writes its persistence every ``autosave_interval`` and on SIGTERM, not per message.
Here the interval is an hour, the cloud's ingest is away (its persistent session queues the lot's
events at the broker, PUBACK 0x00) and the broker is SIGKILLed: the queued events are gone. The
agent marked them sent on the PUBACK but not confirmed, so after reconnecting it publishes them
again, and the cloud ends up with every event exactly once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import parkgate_protocol as p
from cloud_api.lot_sync import Ingest
from devservices import CloudStack, wait_for
from gate_agent.config import SyncConfig
from gate_agent.domain import EventKind, JournalEvent
from gate_agent.store import Store
from gate_agent.sync import SyncClient
from tests.support.mqtt import Peer

pytestmark = pytest.mark.integration

EVENTS = 50
NO_AUTOSAVE = "autosave_interval 3600"  # after the test broker's "autosave_interval 1": wins


@pytest.fixture
def stack_options() -> dict[str, Any]:
    return {"broker_config": NO_AUTOSAVE}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "agent.sqlite3") as s:
        yield s


def start_agent(stack: CloudStack, store: Store, data_dir: Path) -> SyncClient:
    lot_id = stack.lot_ids[0]
    config = SyncConfig(**stack.agent_sync(lot_id))
    client = SyncClient(config, lot_id=str(lot_id), store=store, data_dir=data_dir).start()
    wait_for(lambda: client.status.subscribed, timeout=10, what="agent connected")
    return client


def accepted_while_the_ingest_is_away(
    stack: CloudStack, store: Store, sync: SyncClient
) -> set[str]:
    """Journal EVENTS events and wait until the broker PUBACKed them all (queued, not stored)."""
    lot = str(stack.lot_ids[0])
    stack.ingest.stop()  # its persistent session stays at the broker and queues our events
    ids = set()
    for n in range(EVENTS):
        event = JournalEvent(lot_id=lot, kind=EventKind.HEALTH, lane_id="crash", detail={"n": n})
        ids.add(store.journal(event))
    sync.notify()
    wait_for(lambda: store.unsent_events() == [], timeout=20, what="every event PUBACKed")
    assert sync.outbox.undelivered_total == 0  # 0x00: queued for the ingest, not dropped
    assert store.outbox_depth() == EVENTS  # accepted by the broker, confirmed by nobody
    assert stack.event_count() == 0
    return ids


def crash_broker_and_restart_ingest(stack: CloudStack) -> None:
    stack.broker.stop(signal.SIGKILL)  # power cut: nothing saved since the broker started
    stack.broker.start()
    stack.ingest = Ingest(stack.sessions, stack.mqtt).start()  # same client id and session
    wait_for(stack.ingest.connected.is_set, timeout=15, what="ingest reconnected")


def test_events_lost_in_a_broker_crash_are_published_again_and_stored_once(
    tmp_path: Path, stack: CloudStack, store: Store
) -> None:
    sync = start_agent(stack, store, tmp_path)
    try:
        ids = accepted_while_the_ingest_is_away(stack, store, sync)
        crash_broker_and_restart_ingest(stack)
        wait_for(lambda: store.outbox_depth() == 0, timeout=30, what="every event confirmed")
        assert sync.outbox.requeued_total >= EVENTS  # published again after the reconnect
    finally:
        sync.stop()
    stored = stack.event_ids()
    assert len(stored) == len(set(stored)) == EVENTS
    assert set(stored) == ids
    assert all(e.confirmed_at is not None for e in store.events(EVENTS))


def test_the_crash_really_loses_the_accepted_events_until_the_agent_is_back(
    tmp_path: Path, stack: CloudStack, store: Store
) -> None:
    """The gap itself: with the agent away, the restarted broker delivers the ingest nothing of
    what it had PUBACKed (a later marker event arrives alone); the agent, once back, fills it."""
    sync = start_agent(stack, store, tmp_path)
    ids = accepted_while_the_ingest_is_away(stack, store, sync)
    sync.stop()
    crash_broker_and_restart_ingest(stack)
    lot_id = stack.lot_ids[0]
    device = stack.devices[lot_id]
    marker = p.GateEvent(
        event_id="marker",
        lot_id=str(lot_id),
        kind=p.GateEventKind.HEALTH,
        occurred_at=datetime.now(UTC),
    )
    peer = Peer(stack.broker, device.mqtt_username, device.mqtt_password)
    try:
        assert peer.publish(p.topic(str(lot_id), "events"), p.encode(marker)).value == 0
    finally:
        peer.close()
    # anything restored from the broker's queue would have reached the ingest before the marker
    wait_for(lambda: "marker" in stack.event_ids(), timeout=15, what="the marker stored")
    assert stack.event_ids() == ["marker"]
    assert store.outbox_depth() == EVENTS

    sync = start_agent(stack, store, tmp_path)
    try:
        wait_for(lambda: store.outbox_depth() == 0, timeout=30, what="every event confirmed")
    finally:
        sync.stop()
    stored = stack.event_ids()
    assert len(stored) == len(set(stored)) == EVENTS + 1
    assert set(stored) == ids | {"marker"}
