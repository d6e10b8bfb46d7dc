"""Booking through the API → MQTT push into the agent's cache → a real photo of that plate opens
the entry lane (mock GPIO pin pulses) → the entry event reaches the cloud booking."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from devservices import CloudStack, wait_for
from gate_agent.app import Agent
from gate_agent.config import SyncConfig
from gate_agent.store import Store
from gate_agent.sync import SyncClient
from tests.support.agents import BARRIER_PIN
from tests.support.cloud import soon

pytestmark = pytest.mark.integration


def test_booking_reaches_the_gate_and_the_entry_reaches_the_booking(
    tmp_path: Path,
    stack: CloudStack,
    lot_id: int,
    photo_lane_agent: Callable[[Path], Agent],
    pins: MockFactory,
) -> None:
    data_dir = tmp_path / "agent"
    data_dir.mkdir()
    sync = SyncConfig(**stack.agent_sync(lot_id))

    # 1. the lot is online (sync only); the booking is pushed over MQTT into its cache
    store = Store(data_dir / "agent.sqlite3")
    client = SyncClient(sync, lot_id=str(lot_id), store=store, data_dir=data_dir).start()
    try:
        wait_for(lambda: client.status.subscribed, timeout=10, what="agent connected")
        wait_for(lambda: client.feed.last_catch_up_at is not None, timeout=10, what="catch-up")
        booking_id = stack.book(lot_id, "K179658", soon(1))  # inside the early grace
        cached = wait_for(lambda: store.get_reservation(booking_id), timeout=5, what="push")
        assert client.feed.last_catch_up_at is not None
        assert client.dead_letters.count == 0
    finally:
        client.stop()
        store.close()
    assert getattr(cached, "plate", None) == "K179658"
    assert stack.booking(booking_id).arrived_at is None

    # 2. the full agent on the same data: a real photo of the plate opens the entry lane
    agent = photo_lane_agent(data_dir)
    agent.start()
    try:
        pin = pins.pin(BARRIER_PIN)
        wait_for(lambda: any(s.state for s in pin.states), timeout=30, what="barrier pulse")
        arrived = wait_for(
            lambda: stack.booking(booking_id).arrived_at, timeout=15, what="arrival in the cloud"
        )
        events = [e for e in agent.store.events(limit=10) if e.reservation_id == booking_id]
    finally:
        agent.stop()
    assert arrived is not None
    [event] = events
    assert event.reason == "reservation_valid"
    assert stack.event_ids() == [event.event_id]
