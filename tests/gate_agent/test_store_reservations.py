from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate_agent import plates
from gate_agent.domain import EventKind, JournalEvent, MatchKind, Reservation, ReservationStatus
from gate_agent.plates import normalise
from gate_agent.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def res(
    rid: str, plate: str, status: ReservationStatus = ReservationStatus.CONFIRMED
) -> Reservation:
    return Reservation(rid, plate, NOW, NOW + timedelta(hours=2), status, 0, "EUR", "B7")


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:", clock=lambda: NOW) as s:
        yield s


def test_upsert_then_get_round_trips(store: Store) -> None:
    r = res("r1", "AB123CD")
    store.upsert_reservation(r)
    assert store.get_reservation("r1") == r
    assert store.get_reservation("nope") is None


def test_plate_is_normalised(store: Store) -> None:
    store.upsert_reservation(res("r1", "ab-123 cd"))
    assert store.reservations_for_plate("AB 123-CD") == [res("r1", "AB123CD")]


def test_upsert_updates_in_place(store: Store) -> None:
    store.upsert_reservation(res("r1", "AB123CD", ReservationStatus.PENDING))
    store.upsert_reservation(res("r1", "AB123CD"))
    [only] = store.reservations_for_plate("AB123CD")
    assert only.status is ReservationStatus.CONFIRMED


def test_plate_change_moves_the_index(store: Store) -> None:
    store.upsert_reservation(res("r1", "AB123CD"))
    store.upsert_reservation(res("r1", "XY987ZW"))
    assert store.facts_for("AB123CD", 0.9).match.kind is MatchKind.NONE
    assert store.facts_for("XY987ZW", 0.9).match.kind is MatchKind.EXACT


def test_shared_plate_keeps_its_index_until_last_reservation_goes(store: Store) -> None:
    store.upsert_reservations([res("r1", "AB123CD"), res("r2", "AB123CD")])
    assert store.remove_reservation("r1")
    assert store.facts_for("AB123CD", 0.9).match.kind is MatchKind.EXACT
    assert store.remove_reservation("r2")
    assert not store.remove_reservation("r2")
    assert store.facts_for("AB123CD", 0.9).match.kind is MatchKind.NONE


def test_bulk_upsert_counts_and_indexes(store: Store) -> None:
    count = store.upsert_reservations(res(f"r{i}", f"PL{i:05d}") for i in range(12_000))
    assert count == 12_000
    assert store.facts_for("PL11999", 0.9).reservations[0].id == "r11999"


def test_replace_all_is_a_snapshot(store: Store) -> None:
    store.upsert_reservations([res("old", "OLD111"), res("keep", "KEEP22")])
    assert store.replace_all_reservations([res("keep", "KEEP22"), res("new", "NEW333")]) == 2
    assert store.get_reservation("old") is None
    assert store.facts_for("OLD111", 0.9).match.kind is MatchKind.NONE
    assert store.facts_for("NEW333", 0.9).match.kind is MatchKind.EXACT


def test_replace_all_is_atomic(store: Store) -> None:
    store.upsert_reservation(res("old", "OLD111"))

    def broken_snapshot() -> Iterator[Reservation]:
        yield res("new", "NEW333")
        raise ConnectionError("snapshot stream cut")

    with pytest.raises(ConnectionError):
        store.replace_all_reservations(broken_snapshot())
    assert store.get_reservation("old") is not None
    assert store.get_reservation("new") is None
    assert store.facts_for("OLD111", 0.9).match.kind is MatchKind.EXACT


def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = Reservation("r1", "AB1", datetime(2026, 1, 1), datetime(2026, 1, 2), "confirmed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive"):
        store.upsert_reservation(naive)


@pytest.mark.parametrize(
    ("read", "unsure_at", "kind", "plate"),
    [
        ("AB123CD", None, MatchKind.EXACT, "AB123CD"),
        ("ab 123 cd", None, MatchKind.EXACT, "AB123CD"),
        ("AH123CD", 1, MatchKind.FUZZY, "AB123CD"),  # unsure where it differs
        ("AH123CD", None, MatchKind.NONE, None),  # sure: another car
        ("A8123CD", 1, MatchKind.NONE, None),  # 8/B is a measured lookalike: never explained
        ("AB123C", 5, MatchKind.FUZZY, "AB123CD"),  # last character dropped, unsure edge
        ("AB1Z3CD", 3, MatchKind.FUZZY, "AB123CD"),  # not in the read's lookalike key
        ("XY9870", 5, MatchKind.AMBIGUOUS, None),  # explains two cached plates
        ("ZZZZZZ", 0, MatchKind.NONE, None),
        ("", None, MatchKind.NONE, None),
    ],
)
def test_facts_for_matches_through_the_index(
    store: Store, read: str, unsure_at: int | None, kind: MatchKind, plate: str | None
) -> None:
    store.upsert_reservations(
        [res("r1", "AB123CD"), res("r2", "XY9871"), res("r3", "XY9872"), res("r4", "AB123CD")]
    )
    text = normalise(read)
    conf = tuple(0.4 if i == unsure_at else 0.99 for i in range(len(text)))
    facts = store.facts_for(read, 0.93, conf)
    assert (facts.match.kind, facts.match.plate, facts.confidence) == (kind, plate, 0.93)
    if plate == "AB123CD":
        assert [r.id for r in facts.reservations] == ["r1", "r4"]
    else:
        assert facts.reservations == ()


def test_lookup_agrees_with_matching_the_whole_cache(store: Store) -> None:
    """The staged index lookup gives exactly plates.match over every cached plate."""
    rng = random.Random(7)
    alphabet = "ABCDGIOQSZ0125689X"  # dense in lookalikes, so tiers and ties happen
    cached = sorted({"".join(rng.choices(alphabet, k=rng.randint(4, 5))) for _ in range(300)})
    store.upsert_reservations(res(f"r{i}", p) for i, p in enumerate(cached))
    reads = [
        *cached[:50],
        *("".join(rng.choices(alphabet, k=rng.randint(3, 6))) for _ in range(400)),
    ]
    for read in reads:
        assert store.facts_for(read, 0.9).match == plates.match(read, cached), read


def status(store: Store, rid: str) -> ReservationStatus:
    found = store.get_reservation(rid)
    assert found is not None
    return found.status


def _exit(store: Store, rid: str, plate: str) -> None:
    entry = JournalEvent(
        lot_id="lot-1", kind=EventKind.ENTRY, lane_id="in", plate=plate, reservation_id=rid
    )
    store.record_pass(entry, presence="enter")
    left = JournalEvent(
        lot_id="lot-1", kind=EventKind.EXIT, lane_id="out", plate=plate, reservation_id=rid
    )
    store.record_pass(left, presence="leave")


def test_a_journaled_exit_uses_the_booking_up_across_a_restart_until_the_cloud_agrees(
    tmp_path: Path,
) -> None:
    """The gate's exit completes the booking at once (the cloud's push follows); the journal
    is its record, so a restart in between keeps it; a stale confirmed push does not undo it,
    and the cloud's own completion (or a removal) ends the need to remember."""
    path = tmp_path / "agent.sqlite3"
    with Store(path, clock=lambda: NOW) as store:
        store.upsert_reservations([res("r1", "AB123CD"), res("r2", "CD456EF")])
        _exit(store, "r1", "AB123CD")
        assert status(store, "r1") is ReservationStatus.COMPLETED
        assert status(store, "r2") is ReservationStatus.CONFIRMED
        facts = store.facts_for("AB123CD", 0.99)
        assert [r.status for r in facts.reservations] == [ReservationStatus.COMPLETED]
        [listed] = store.reservations_for_plate("AB123CD")  # the status page's lookup agrees
        assert listed.status is ReservationStatus.COMPLETED
    with Store(path, clock=lambda: NOW) as store:  # restarted before the cloud's push
        assert status(store, "r1") is ReservationStatus.COMPLETED
        store.upsert_reservation(res("r1", "AB123CD"))  # a push made before the exit reached it
        assert status(store, "r1") is ReservationStatus.COMPLETED
        store.replace_all_reservations([res("r1", "AB123CD"), res("r2", "CD456EF")])
        assert status(store, "r1") is ReservationStatus.COMPLETED
        store.upsert_reservation(res("r1", "AB123CD", ReservationStatus.COMPLETED))
        assert store._used_up == set()  # the cloud agrees: nothing left to remember
