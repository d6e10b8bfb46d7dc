"""Stays in the store: the kind of stay presence records, the drive-up count from entries and
exits (and across a restart), a drive-up plate found by the lookup, stay payments (kept by stay
id, through snapshots, gone with the car), stay_id on journaled events, and the 0004 migration."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate_agent.domain import (
    Direction,
    EventKind,
    JournalEvent,
    MatchKind,
    Reservation,
    ReservationStatus,
    StayKind,
    StayPayment,
)
from gate_agent.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STORE_0001 = Path(__file__).parent / "data" / "store-0001.sqlite3"


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:", clock=lambda: NOW) as s:
        yield s


def entry(plate: str, visit: str, reservation: str | None = None) -> JournalEvent:
    return JournalEvent(
        lot_id="lot1",
        kind=EventKind.ENTRY,
        lane_id="entry-1",
        direction=Direction.ENTRY,
        visit_id=visit,
        plate=plate,
        reservation_id=reservation,
        occurred_at=NOW - timedelta(hours=2),
        stay_id=visit,
    )


def leave(plate: str, visit: str, stay: str) -> JournalEvent:
    return JournalEvent(
        lot_id="lot1",
        kind=EventKind.EXIT,
        lane_id="exit-1",
        direction=Direction.EXIT,
        visit_id=visit,
        plate=plate,
        occurred_at=NOW,
        stay_id=stay,
    )


def payment(stay: str, cents: int = 500, through: timedelta = timedelta(0)) -> StayPayment:
    return StayPayment(stay, cents, NOW + through, "EUR", "p1")


def test_presence_keeps_the_kind_of_stay_and_counts_drive_ups(store: Store) -> None:
    store.record_pass(entry("AB123CD", "s1"), presence="enter", stay_kind=StayKind.DRIVE_UP)
    store.record_pass(entry("XY987ZZ", "s2", "r1"), presence="enter")
    store.record_pass(entry("PERMIT1", "s3"), presence="enter", stay_kind=StayKind.PERMIT)
    kinds = {p.plate: p.kind for p in store.inside()}
    assert kinds == {
        "AB123CD": StayKind.DRIVE_UP,
        "XY987ZZ": StayKind.BOOKING,
        "PERMIT1": StayKind.PERMIT,
    }
    assert store.inside_counts() == (3, 1)
    store.record_pass(leave("AB123CD", "x1", "s1"), presence="leave")
    assert store.inside_counts() == (2, 0)


def test_the_drive_up_count_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    with Store(path) as store:
        for n in range(3):
            event = entry(f"DU{n}23AB", f"s{n}")
            store.record_pass(event, presence="enter", stay_kind=StayKind.DRIVE_UP)
        store.record_pass(leave("DU023AB", "x0", "s0"), presence="leave")
    with Store(path) as store:
        assert store.inside_counts() == (2, 2)
        assert store.facts_for("DU123AB", 0.95).presence is not None  # the filter knows it


def test_a_drive_up_plate_is_found_by_the_lookup_only_while_inside(store: Store) -> None:
    assert store.facts_for("AB123CD", 0.95).match.kind is MatchKind.NONE
    store.record_pass(entry("AB123CD", "s1"), presence="enter", stay_kind=StayKind.DRIVE_UP)
    facts = store.facts_for("AB123CD", 0.95)
    assert facts.match.kind is MatchKind.EXACT
    assert facts.presence is not None and facts.presence.kind is StayKind.DRIVE_UP
    assert facts.stay_payment is None
    store.record_pass(leave("AB123CD", "x1", "s1"), presence="leave")
    assert store.facts_for("AB123CD", 0.95).match.kind is MatchKind.NONE


def test_a_booked_plate_stays_indexed_after_its_car_leaves(store: Store) -> None:
    booking = Reservation(
        "r1", "AB123CD", NOW, NOW + timedelta(hours=2), ReservationStatus.CONFIRMED
    )
    store.upsert_reservation(booking)
    store.record_pass(entry("AB123CD", "s1", "r1"), presence="enter")
    store.record_pass(leave("AB123CD", "x1", "s1"), presence="leave")
    assert store.facts_for("AB123CD", 0.95).match.kind is MatchKind.EXACT


def test_stay_payments_are_kept_by_stay_and_reach_the_lookup(store: Store) -> None:
    store.record_pass(entry("AB123CD", "s1"), presence="enter", stay_kind=StayKind.DRIVE_UP)
    assert store.apply_stay_payment(payment("s1", 300), "ab-123-cd")
    assert store.apply_stay_payment(payment("s1", 750, timedelta(minutes=5)), "AB123CD")
    kept = payment("s1", 750, timedelta(minutes=5))
    assert store.stay_payment("s1") == kept
    assert store.facts_for("AB123CD", 0.95).stay_payment == kept


def test_a_payment_for_a_stay_not_inside_is_not_kept(store: Store) -> None:
    assert not store.apply_stay_payment(payment("gone"), "AB123CD")
    assert store.stay_payment("gone") is None


def test_snapshots_do_not_lose_stay_payments(store: Store) -> None:
    store.record_pass(entry("AB123CD", "s1"), presence="enter", stay_kind=StayKind.DRIVE_UP)
    store.apply_stay_payment(payment("s1"), "AB123CD")
    store.replace_all_reservations([])
    store.replace_list_entries([])
    facts = store.facts_for("AB123CD", 0.95)
    assert facts.match.kind is MatchKind.EXACT  # the snapshot rebuilt the index with presence
    assert facts.stay_payment == payment("s1")


def test_payments_leave_with_the_car_and_with_a_presence_reset(store: Store) -> None:
    store.record_pass(entry("AB123CD", "s1"), presence="enter", stay_kind=StayKind.DRIVE_UP)
    store.apply_stay_payment(payment("s1"), "AB123CD")
    store.record_pass(leave("AB123CD", "x1", "s1"), presence="leave")
    assert store.stay_payment("s1") is None
    store.record_pass(entry("XY987ZZ", "s2"), presence="enter", stay_kind=StayKind.DRIVE_UP)
    store.apply_stay_payment(payment("s2"), "XY987ZZ")
    store.reset_presence("XY987ZZ", actor="op", reason="towed")
    assert store.stay_payment("s2") is None
    assert store.facts_for("XY987ZZ", 0.95).match.kind is MatchKind.NONE


def test_events_keep_their_stay_id(store: Store) -> None:
    store.record_pass(entry("AB123CD", "s1"), presence="enter", stay_kind=StayKind.DRIVE_UP)
    store.record_pass(leave("AB123CD", "x1", "s1"), presence="leave")
    assert [(e.visit_id, e.stay_id) for e in store.unsent_events()] == [
        ("s1", "s1"),
        ("x1", "s1"),
    ]


def test_migration_gives_cars_inside_a_kind_and_indexes_their_plates(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    shutil.copy(STORE_0001, path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM presence")
        rows = [("AB123CD", "v1", NOW.isoformat(), "r1"), ("ZZ999AA", "v2", NOW.isoformat(), None)]
        conn.executemany("INSERT INTO presence VALUES (?, ?, ?, ?)", rows)
    with Store(path) as store:
        kinds = {p.plate: p.kind for p in store.inside()}
        assert kinds == {"AB123CD": StayKind.BOOKING, "ZZ999AA": StayKind.PERMIT}
        assert store.facts_for("ZZ999AA", 0.95).match.kind is MatchKind.EXACT
