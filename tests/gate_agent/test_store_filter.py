"""The in-memory key filter in front of the plate index: never a missed match, fewer seeks.

The first two tests are unit tests of the store's private filter and lookup (a false-positive
rate and a count of index seeks cannot be observed through ``Store``); the rest go through it.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta

from gate_agent import plates
from gate_agent.domain import ListEntry, ListKind, MatchKind, Reservation, ReservationStatus
from gate_agent.store import Store
from gate_agent.store._filter import KeyFilter
from gate_agent.store._lookup import lookup

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ALPHABET = string.ascii_uppercase + string.digits


def booking(rid: str, plate: str) -> Reservation:
    return Reservation(rid, plate, NOW, NOW + timedelta(hours=2), ReservationStatus.CONFIRMED)


def test_no_false_negatives_and_few_false_positives() -> None:
    rng = random.Random(1)
    keys = {"".join(rng.choices(ALPHABET, k=7)) for _ in range(20_000)}
    f = KeyFilter(len(keys))
    f.add_all(keys)
    assert all(k in f for k in keys)
    others = ["".join(rng.choices(ALPHABET, k=8)) for _ in range(20_000)]
    false_positive_rate = sum(k in f for k in others) / len(others)
    assert false_positive_rate < 0.03


def test_an_unknown_read_costs_no_index_seek() -> None:
    calls: list[str] = []
    known = KeyFilter()
    known.add_all(plates.index_keys("ABC123"))

    def fetch(sql: str, args: object) -> list[tuple[object, ...]]:
        calls.append(sql)
        return []

    facts = lookup(fetch, "QWERTY9", 0.9, known)
    assert facts.match.kind is MatchKind.NONE
    assert calls == []


def test_lookups_stay_exact_through_writes_removals_and_snapshots(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "agent.sqlite3", clock=lambda: NOW)
    try:
        store.upsert_reservation(booking("a", "ABC123"))
        store.put_list_entry(ListEntry("VIP777", ListKind.ALLOW))
        assert store.facts_for("ABC123", 0.9).match.kind is MatchKind.EXACT
        unsure_second = (1.0, 0.5, 1.0, 1.0, 1.0, 1.0)
        assert store.facts_for("A8C123", 0.9, unsure_second).match.plate is None  # 8/B: lookalike
        assert store.facts_for("AZC123", 0.9, unsure_second).match.plate == "ABC123"
        assert store.facts_for("VIP77", 0.9, (1.0, 1.0, 1.0, 1.0, 0.6)).match.plate == "VIP777"
        store.remove_reservation("a")
        assert store.facts_for("ABC123", 0.9).match.kind is MatchKind.NONE
        store.upsert_reservation(booking("a2", "ABC123"))  # back again: bits were never cleared
        assert store.facts_for("ABC123", 0.9).reservations[0].id == "a2"
        store.replace_all_reservations([booking("b", "XYZ987")])
        assert store.facts_for("ABC123", 0.9).match.kind is MatchKind.NONE
        assert store.facts_for("XYZ987", 0.9).match.kind is MatchKind.EXACT
        assert store.facts_for("VIP777", 0.9).match.kind is MatchKind.EXACT  # lists survive
    finally:
        store.close()
    reopened = Store(tmp_path / "agent.sqlite3", clock=lambda: NOW)  # rebuilt from the index
    try:
        assert reopened.facts_for("XYZ98", 0.9, (1, 1, 1, 1, 0.6)).match.plate == "XYZ987"
    finally:
        reopened.close()


def test_growth_past_the_designed_size_rebuilds_the_filter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "agent.sqlite3", clock=lambda: NOW)
    try:
        small = store._keys.capacity
        rng = random.Random(2)
        many = ["".join(rng.choices(ALPHABET, k=7)) for _ in range(small)]
        store.upsert_reservations(booking(f"r{i}", p) for i, p in enumerate(many))
        assert store._keys.capacity > small
        assert all(store.facts_for(p, 0.9).match.kind is MatchKind.EXACT for p in many[:200])
    finally:
        store.close()
