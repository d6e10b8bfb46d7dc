from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gate_agent.domain import ListEntry, ListKind, MatchKind, Reservation, ReservationStatus
from gate_agent.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:", clock=lambda: NOW) as s:
        yield s


def test_put_list_and_remove(store: Store) -> None:
    allow = ListEntry("STAFF1", ListKind.ALLOW, NOW, NOW + timedelta(days=30), "caretaker")
    deny = ListEntry("BAD999", ListKind.DENY)
    store.put_list_entry(allow)
    store.put_list_entry(deny)
    assert store.list_entries() == [deny, allow]
    assert store.remove_list_entry("STAFF1", ListKind.ALLOW)
    assert not store.remove_list_entry("STAFF1", ListKind.ALLOW)
    assert store.list_entries() == [deny]


def test_put_replaces_the_same_plate_and_kind(store: Store) -> None:
    store.put_list_entry(ListEntry("STAFF1", ListKind.ALLOW, note="a"))
    store.put_list_entry(ListEntry("staff-1", ListKind.ALLOW, note="b"))
    assert store.list_entries() == [ListEntry("STAFF1", ListKind.ALLOW, note="b")]


def test_listed_plates_are_matched_fuzzily(store: Store) -> None:
    store.put_list_entry(ListEntry("BAD999", ListKind.DENY))
    facts = store.facts_for("PAD999", 0.95, (0.6, 1.0, 1.0, 1.0, 1.0, 1.0))
    assert facts.match.kind is MatchKind.FUZZY
    assert facts.list_entries == (ListEntry("BAD999", ListKind.DENY),)
    assert store.facts_for("PAD999", 0.99, (0.99,) * 6).match.kind is MatchKind.NONE


def test_plate_with_both_lists_and_reservation(store: Store) -> None:
    r = Reservation("r1", "DUAL11", NOW, NOW + timedelta(hours=1), ReservationStatus.CONFIRMED)
    store.upsert_reservation(r)
    store.put_list_entry(ListEntry("DUAL11", ListKind.DENY))
    store.put_list_entry(ListEntry("DUAL11", ListKind.ALLOW))
    facts = store.facts_for("DUAL11", 0.95)
    assert [e.kind for e in facts.list_entries] == [ListKind.ALLOW, ListKind.DENY]
    assert facts.reservations == (r,)
    store.remove_list_entry("DUAL11", ListKind.DENY)
    store.remove_list_entry("DUAL11", ListKind.ALLOW)
    assert store.facts_for("DUAL11", 0.95).match.kind is MatchKind.EXACT  # reservation remains
    store.remove_reservation("r1")
    assert store.facts_for("DUAL11", 0.95).match.kind is MatchKind.NONE


def test_snapshot_keeps_list_entries(store: Store) -> None:
    store.put_list_entry(ListEntry("STAFF1", ListKind.ALLOW))
    store.replace_all_reservations([])
    assert store.facts_for("STAFF1", 0.95).match.kind is MatchKind.EXACT
