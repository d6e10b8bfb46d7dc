from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gate_agent.domain import (
    Direction,
    EventKind,
    JournalEvent,
    Presence,
    Reservation,
    ReservationStatus,
)
from gate_agent.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:", clock=lambda: NOW) as s:
        yield s


def passing(kind: EventKind, plate: str = "AB123CD", visit: str = "v1") -> JournalEvent:
    direction = Direction.EXIT if kind is EventKind.EXIT else Direction.ENTRY
    return JournalEvent(
        lot_id="lot1",
        kind=kind,
        lane_id="lane",
        direction=direction,
        visit_id=visit,
        plate=plate,
        reservation_id="r1",
        occurred_at=NOW - timedelta(minutes=3),
    )


def test_entry_records_presence_with_the_event(store: Store) -> None:
    store.record_pass(passing(EventKind.ENTRY), presence="enter")
    expected = Presence("AB123CD", "v1", NOW - timedelta(minutes=3), "r1")
    assert store.inside() == [expected]
    assert store.presence_of("ab 123 cd") == expected
    assert store.outbox_depth() == 1


def test_exit_clears_presence(store: Store) -> None:
    store.record_pass(passing(EventKind.ENTRY), presence="enter")
    store.record_pass(passing(EventKind.EXIT, visit="v2"), presence="leave")
    assert store.inside() == []
    assert store.outbox_depth() == 2


def test_denied_event_leaves_presence_alone(store: Store) -> None:
    store.record_pass(passing(EventKind.ENTRY), presence="enter")
    store.record_pass(passing(EventKind.DENIED, visit="v2"))
    assert len(store.inside()) == 1


def test_presence_reaches_facts_for(store: Store) -> None:
    store.upsert_reservation(
        Reservation("r1", "AB123CD", NOW, NOW + timedelta(hours=1), ReservationStatus.CONFIRMED)
    )
    store.record_pass(passing(EventKind.ENTRY), presence="enter")
    facts = store.facts_for("AB123CD", 0.9)
    assert facts.presence is not None and facts.presence.visit_id == "v1"


def test_presence_change_without_plate_is_refused_and_rolled_back(store: Store) -> None:
    bad = JournalEvent(lot_id="lot1", kind=EventKind.ENTRY)
    with pytest.raises(ValueError, match="plate"):
        store.record_pass(bad, presence="enter")
    assert store.outbox_depth() == 0


def test_reset_presence_is_audited(store: Store) -> None:
    store.record_pass(passing(EventKind.ENTRY), presence="enter")
    assert store.reset_presence("AB123CD", actor="alice", reason="car towed")
    assert store.inside() == []
    [entry] = store.audit_log()
    assert (entry.actor, entry.action, entry.reason, entry.at) == (
        "alice",
        "presence_reset",
        "car towed",
        NOW,
    )
    assert entry.detail == {"plate": "AB123CD", "was_inside": True}
    assert not store.reset_presence("AB123CD", actor="alice", reason="again")
    assert len(store.audit_log()) == 2
