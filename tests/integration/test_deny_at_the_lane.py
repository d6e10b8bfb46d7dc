"""A real photo of a car with a paid booking at a real entry lane, after the lot's operator
denylisted its plate through the cloud API: the deny wins, the barrier never moves, and the
denial reaches the cloud."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from devservices import CloudStack, wait_for
from gate_agent.app import Agent
from gate_agent.store import Store
from tests.support.agents import BARRIER_PIN, add_entry, start_client
from tests.support.cloud import soon

pytestmark = pytest.mark.integration

PLATE = "K179658"  # the plate in the photo the lane replays (conftest's BOOKED_PHOTO)


@pytest.mark.slow
def test_a_denylisted_car_with_a_paid_booking_stays_out(
    tmp_path: Path,
    stack: CloudStack,
    lot_id: int,
    photo_lane_agent: Callable[[Path], Agent],
    pins: MockFactory,
) -> None:
    """The real photo of a booked car at a real lane: the deny wins, the barrier never moves,
    and the denial reaches the cloud."""
    data_dir = tmp_path / "agent"
    data_dir.mkdir()
    booking = stack.book(lot_id, PLATE, soon(1))
    add_entry(stack, lot_id, plate=PLATE, kind="deny", note="blocked by the operator")
    store = Store(data_dir / "agent.sqlite3")  # the lot's cache is in step before the car comes
    client = start_client(stack, lot_id, store, data_dir)
    try:
        wait_for(lambda: store.get_reservation(booking), timeout=5, what="booking pushed")
        wait_for(lambda: store.list_entries(), timeout=5, what="deny pushed")
    finally:
        client.stop()
        store.close()
    agent = photo_lane_agent(data_dir)
    agent.start()
    try:
        denied = wait_for(
            lambda: [e for e in agent.store.events(limit=20) if e.reason == "denylisted"],
            timeout=30,
            what="a denylisted decision",
        )
        wait_for(lambda: denied[0].event_id in stack.event_ids(), timeout=15, what="in the cloud")
        pin = pins.pin(BARRIER_PIN)
        assert not any(state.state for state in pin.states)
    finally:
        agent.stop()
