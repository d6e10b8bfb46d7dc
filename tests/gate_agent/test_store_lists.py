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


def test_entries_with_ids_keep_several_windows_per_plate(store: Store) -> None:
    staff = ListEntry("STAFF1", ListKind.ALLOW, NOW, NOW + timedelta(days=1), entry_id="e1")
    later = ListEntry("STAFF1", ListKind.ALLOW, NOW + timedelta(days=7), entry_id="e2")
    gate_only = ListEntry(
        "STAFF1", ListKind.DENY, entry_id="e3", category="blocked", lanes=("exit-1",)
    )
    for entry in (staff, later, gate_only):
        store.put_list_entry(entry)
    assert store.list_entry_count() == 3
    facts = store.facts_for("STAFF1", 0.95)
    assert facts.list_entries == (staff, later, gate_only)
    assert facts.list_entries[2].lanes == ("exit-1",)
    assert facts.list_entries[2].category == "blocked"
    assert store.remove_list_entry("STAFF1", ListKind.ALLOW, entry_id="e1")
    assert store.facts_for("STAFF1", 0.95).list_entries == (later, gate_only)


def test_an_entry_moved_to_another_plate_leaves_the_old_plate(store: Store) -> None:
    store.put_list_entry(ListEntry("OLD111", ListKind.ALLOW, entry_id="e1"))
    store.put_list_entry(ListEntry("NEW222", ListKind.ALLOW, entry_id="e1", note="moved"))
    assert store.facts_for("OLD111", 0.95).match.kind is MatchKind.NONE
    assert store.facts_for("NEW222", 0.95).list_entries[0].note == "moved"
    assert store.list_entry_count() == 1


def test_remove_without_id_removes_every_entry_of_that_plate_and_kind(store: Store) -> None:
    store.put_list_entry(ListEntry("TWICE1", ListKind.ALLOW, entry_id="a"))
    store.put_list_entry(ListEntry("TWICE1", ListKind.ALLOW, entry_id="b"))
    store.put_list_entry(ListEntry("TWICE1", ListKind.DENY, entry_id="c"))
    assert store.remove_list_entry("twice-1", ListKind.ALLOW)
    assert [e.entry_id for e in store.list_entries()] == ["c"]


def test_replace_list_entries_swaps_every_entry_and_keeps_reservations(store: Store) -> None:
    r = Reservation("r1", "BOOKED1", NOW, NOW + timedelta(hours=1), ReservationStatus.CONFIRMED)
    store.upsert_reservation(r)
    store.put_list_entry(ListEntry("GONE11", ListKind.DENY, entry_id="old"))
    store.put_list_entry(ListEntry("BOOKED1", ListKind.DENY, entry_id="old2"))
    fresh = [
        ListEntry("KEPT22", ListKind.ALLOW, entry_id="n1", category="resident"),
        ListEntry("kept-22", ListKind.DENY, entry_id="n2"),
    ]
    assert store.replace_list_entries(fresh) == 2
    assert store.facts_for("GONE11", 0.95).match.kind is MatchKind.NONE
    booked = store.facts_for("BOOKED1", 0.95)
    assert booked.reservations == (r,) and booked.list_entries == ()
    assert [e.entry_id for e in store.facts_for("KEPT22", 0.95).list_entries] == ["n1", "n2"]
    assert store.replace_list_entries([]) == 0
    assert store.facts_for("KEPT22", 0.95).match.kind is MatchKind.NONE
    assert store.list_entry_count() == 0


def test_a_repeated_snapshot_rewrites_only_what_changed() -> None:
    now = [NOW]
    with Store(":memory:", clock=lambda: now[0]) as store:
        same = ListEntry("SAME11", ListKind.ALLOW, entry_id="a", lanes=("in-1",))
        moved = ListEntry("FROM11", ListKind.DENY, entry_id="b", valid_from=NOW)
        store.replace_list_entries([same, moved])
        now[0] += timedelta(hours=1)
        moved_on = ListEntry("TO2222", ListKind.DENY, entry_id="b", valid_from=NOW)
        assert store.replace_list_entries([same, moved_on]) == 2
        assert store.list_entries() == [same, moved_on]
        assert store.facts_for("FROM11", 0.95).match.kind is MatchKind.NONE
        stamps = dict(store._db.fetch("SELECT entry_key, updated_at FROM list_entries", ()))
        assert stamps == {
            "id:a": "2026-03-02T12:00:00.000000+00:00",
            "id:b": "2026-03-02T13:00:00.000000+00:00",
        }
