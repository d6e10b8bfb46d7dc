"""Access lists and policy set through the cloud API reach a real agent over real Mosquitto and
change what its lanes decide: deny beats a paid booking within a second, removing it restores
admission, an allow opens without a booking, an entry outside its window does not, and a lot that
was offline while a deny was added applies it before anything that came after it. On SQLite and
on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devservices import CloudStack, wait_for
from gate_agent.decision import decide
from gate_agent.domain import Decision, Direction, LotRules, Reason
from gate_agent.rules import rules_in_force
from gate_agent.store import Store
from gate_agent.sync import SyncClient
from tests.support.agents import add_entry, start_client
from tests.support.cloud import soon

pytestmark = pytest.mark.integration

PLATE = "K179658"
PHOTO = "us/316b64c0-55bf-4079-a1c0-d93f461a576f.jpg"  # plate K179658
BARRIER_PIN = 17


@pytest.fixture(params=["sqlite", "postgres"])
def stack_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "postgres":
        return {"database_url": request.getfixturevalue("postgres_db")}
    return {}


def entry_decision(store: Store, plate: str) -> Decision:
    """What the entry lane decides now for a sure read of ``plate`` (the lane's own path:
    the store's facts, the rules in force, the pure decision)."""
    facts = store.facts_for(plate, 0.99, (0.99,) * len(plate))
    held = store.policy
    rules = rules_in_force(None if held is None else held.policy, LotRules())
    return decide(Direction.ENTRY, [facts], datetime.now(UTC), rules, "entry-1")


@pytest.fixture
def online(stack: CloudStack, lot_id: int, tmp_path: Path) -> Iterator[tuple[Store, SyncClient]]:
    store = Store(tmp_path / "agent.sqlite3")
    client = start_client(stack, lot_id, store, tmp_path)
    yield store, client
    client.stop()
    store.close()


def test_the_gate_obeys_the_lots_access_list(
    stack: CloudStack, lot_id: int, online: tuple[Store, SyncClient]
) -> None:
    store, _ = online
    booking = stack.book(lot_id, PLATE, soon(1))
    wait_for(lambda: store.get_reservation(booking), timeout=5, what="booking pushed")
    assert entry_decision(store, PLATE).reason is Reason.RESERVATION_VALID

    started = time.monotonic()
    deny = add_entry(stack, lot_id, plate=PLATE, kind="deny", note="reported stolen")
    refused = wait_for(
        lambda: entry_decision(store, PLATE).reason is Reason.DENYLISTED, timeout=5, what="deny"
    )
    assert refused and time.monotonic() - started <= 1.0  # API call → refused at the entry

    assert stack.admin.delete(f"/lots/{lot_id}/access-list/{deny}").status_code in (200, 204)
    wait_for(
        lambda: entry_decision(store, PLATE).reason is Reason.RESERVATION_VALID,
        timeout=5,
        what="admission restored",
    )

    add_entry(stack, lot_id, plate="STAFF01", kind="allow", category="staff")
    wait_for(
        lambda: entry_decision(store, "STAFF01").reason is Reason.ALLOWLISTED,
        timeout=5,
        what="allowlisted",
    )
    assert entry_decision(store, "STAFF01").open

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    add_entry(stack, lot_id, plate="LATER01", kind="allow", valid_from=later)
    wait_for(
        lambda: any(e.plate == "LATER01" for e in store.list_entries()), timeout=5, what="pushed"
    )
    not_yet = entry_decision(store, "LATER01")
    assert not not_yet.open and not_yet.reason is Reason.NO_RESERVATION


def test_a_partitioned_lot_applies_a_deny_before_what_came_after_it(
    stack: CloudStack, lot_id: int, tmp_path: Path
) -> None:
    store = Store(tmp_path / "agent.sqlite3")
    client = start_client(stack, lot_id, store, tmp_path)
    booking = stack.book(lot_id, PLATE, soon(1))
    wait_for(lambda: store.get_reservation(booking), timeout=5, what="booking pushed")
    client.stop()  # the lot loses its link; its lanes go on deciding from the cache

    add_entry(stack, lot_id, plate=PLATE, kind="deny", note="added while the lot was offline")
    after = stack.book(lot_id, "AFTER01", soon(1))  # a change with a later sequence number
    assert entry_decision(store, PLATE).open  # offline: the cache does not know yet

    client = start_client(stack, lot_id, store, tmp_path)
    try:
        deadline = time.monotonic() + 10
        while store.get_reservation(after) is None:
            assert time.monotonic() < deadline, "the later booking never arrived"
            time.sleep(0.002)
        # the later booking is in: the deny before it must already be in force
        assert entry_decision(store, PLATE).reason is Reason.DENYLISTED
        assert entry_decision(store, "AFTER01").reason is Reason.RESERVATION_VALID
    finally:
        client.stop()
        store.close()
