from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate_agent.domain import Decision, Direction, EventKind, JournalEvent, Reason
from gate_agent.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def ev(plate: str = "AB123CD", **changes: object) -> JournalEvent:
    event = JournalEvent(
        lot_id="lot1",
        kind=EventKind.ENTRY,
        lane_id="in1",
        direction=Direction.ENTRY,
        visit_id="v1",
        plate=plate,
        read_text=plate,
        confidence=0.97,
        reason="reservation_valid",
        reservation_id="r1",
        detail={"votes": 3},
    )
    return replace(event, **changes)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[Store]:
    with Store(":memory:", clock=clock) as s:
        yield s


def test_journal_round_trips_and_stamps_time(store: Store) -> None:
    event = ev()
    assert len(event.event_id) == 32
    assert store.journal(event) == event.event_id
    [stored] = store.unsent_events()
    assert stored == replace(event, occurred_at=NOW)


def test_same_event_id_is_journaled_once(store: Store) -> None:
    event = ev()
    store.journal(event)
    store.journal(event)
    assert store.outbox_depth() == 1


def test_unsent_events_in_journal_order_and_mark_sent(store: Store, clock: Clock) -> None:
    ids = []
    for i in range(5):
        clock.now = NOW - timedelta(minutes=i)  # clock order must not matter, journal order does
        ids.append(store.journal(ev(visit_id=f"v{i}")))
    assert [e.event_id for e in store.unsent_events(limit=3)] == ids[:3]
    clock.now = NOW + timedelta(minutes=1)
    assert store.mark_sent(ids[:2]) == 2
    assert store.mark_sent(ids[:2]) == 0
    assert store.outbox_depth() == 5  # the broker's PUBACK is not the cloud's confirmation
    assert [e.event_id for e in store.unsent_events()] == ids[2:]
    assert store.events(plate="AB123CD")[-1].sent_at == NOW + timedelta(minutes=1)


def test_confirmed_events_leave_the_outbox_unconfirmed_ones_are_requeued(
    store: Store, clock: Clock
) -> None:
    ids = [store.journal(ev(visit_id=f"v{i}")) for i in range(4)]
    store.mark_sent(ids[:3])
    clock.now = NOW + timedelta(seconds=10)
    assert store.mark_confirmed([ids[0], ids[3], "unknown"]) == 2  # an ack can beat the PUBACK
    assert store.mark_confirmed([ids[0]]) == 0
    assert store.outbox_depth() == 2
    by_id = {e.event_id: e for e in store.events()}
    assert by_id[ids[3]].sent_at == by_id[ids[3]].confirmed_at == NOW + timedelta(seconds=10)
    assert store.requeue_unconfirmed(timedelta(seconds=30)) == 0  # sent 10 s ago: not overdue
    clock.now = NOW + timedelta(seconds=31)
    assert store.requeue_unconfirmed(timedelta(seconds=30)) == 2
    assert [e.event_id for e in store.unsent_events()] == ids[1:3]
    assert store.requeue_unconfirmed() == 0  # unsent ones are the outbox's already


def test_events_newest_first_with_filters(store: Store, clock: Clock) -> None:
    store.journal(ev("AAA111", lane_id="in1"))
    clock.now = NOW + timedelta(minutes=5)
    store.journal(ev("BBB222", lane_id="out1", kind=EventKind.DENIED))
    clock.now = NOW + timedelta(minutes=10)
    store.journal(ev("AAA111", lane_id="out1", kind=EventKind.EXIT))
    assert [e.plate for e in store.events()] == ["AAA111", "BBB222", "AAA111"]
    assert [e.kind for e in store.events(plate="aaa 111")] == [EventKind.EXIT, EventKind.ENTRY]
    assert [e.plate for e in store.events(lane_id="out1")] == ["AAA111", "BBB222"]
    assert [e.plate for e in store.events(kind=EventKind.DENIED)] == ["BBB222"]
    window = store.events(since=NOW + timedelta(minutes=1), until=NOW + timedelta(minutes=10))
    assert [e.plate for e in window] == ["BBB222"]
    assert len(store.events(limit=1)) == 1


def test_purge_blanks_every_old_read_confirmed_or_not(store: Store, clock: Clock) -> None:
    old_sent = store.journal(ev("OLD111", image_path="/img/1.jpg"))
    old_unsent = store.journal(ev("OLD222"))
    old_sent_only = store.journal(ev("OLD444"))  # the broker accepted it; the cloud never said
    clock.now = NOW + timedelta(days=40)
    recent_sent = store.journal(ev("NEW333"))
    store.mark_sent([old_sent, recent_sent, old_sent_only])
    store.mark_confirmed([old_sent, recent_sent])
    assert store.purge_reads(older_than=NOW + timedelta(days=10)) == 3
    by_id = {e.event_id: e for e in store.events()}
    assert (by_id[old_sent].plate, by_id[old_sent].read_text, by_id[old_sent].image_path) == (
        None,
        None,
        None,
    )
    assert by_id[old_sent].reason == "reservation_valid"  # the event itself stays
    assert by_id[old_unsent].plate is None  # an offline lot keeps no plate past retention
    assert by_id[old_sent_only].plate is None
    assert [e.event_id for e in store.unsent_events()] == [old_unsent]  # still owed to the cloud
    assert by_id[recent_sent].plate == "NEW333"
    assert store.purge_reads(older_than=NOW + timedelta(days=10)) == 0


def test_plate_hasher_applies_to_journal_and_search(clock: Clock) -> None:
    with Store(":memory:", clock=clock, plate_hasher=lambda p: f"h:{p[::-1]}") as store:
        store.record_pass(ev("AB123"), presence="enter")
        [stored] = store.events(plate="AB123")
        assert (stored.plate, stored.read_text) == ("h:321BA", "h:321BA")
        assert store.presence_of("AB123") is not None  # presence keeps the real plate


def test_for_decision_maps_kind_and_fields() -> None:
    opened = Decision(True, Reason.EXIT_PAID, "AB1", "A81", 0.91, "r1", True, flags=("x",))
    event = JournalEvent.for_decision(
        opened, lot_id="lot1", lane_id="out1", direction=Direction.EXIT, visit_id="v9"
    )
    assert (event.kind, event.plate, event.read_text, event.fuzzy) == (
        EventKind.EXIT,
        "AB1",
        "A81",
        True,
    )
    assert (event.reason, event.reservation_id, event.detail["flags"]) == ("exit_paid", "r1", ["x"])
    denied = replace(opened, open=False, reason=Reason.PAYMENT_DUE, amount_owed_cents=300)
    event = JournalEvent.for_decision(
        denied, lot_id="lot1", lane_id="out1", direction=Direction.EXIT, visit_id="v9"
    )
    assert (event.kind, event.amount_owed_cents) == (EventKind.DENIED, 300)


def test_journal_survives_reopen(tmp_path: Path) -> None:
    """Confirmations are written (at the latest on close); PUBACKs are not: an event the broker
    accepted but the cloud never confirmed is published again after a restart."""
    path = tmp_path / "agent.sqlite"
    with Store(path) as store:
        first = store.journal(ev())
        store.mark_confirmed([first])
        second = store.record_pass(ev("XY999"), presence="enter")
        store.mark_sent([second])
        assert store.unsent_events() == []
    with Store(path) as store:
        assert [e.event_id for e in store.events()] == [second, first]
        assert [e.event_id for e in store.unsent_events()] == [second]
        assert store.presence_of("XY999") is not None


def test_purge_in_batches_blanks_every_old_read_and_only_those(store: Store, clock: Clock) -> None:
    """Found by a scan in journal order, blanked a batch per commit: an event journaled late
    with an old time (a clock step) is blanked too; a recent one between old ones is kept."""
    old = [store.journal(ev(f"OLD{i}", occurred_at=NOW)) for i in range(3)]
    recent = store.journal(ev("NEW1", occurred_at=NOW + timedelta(days=40)))
    old.append(store.journal(ev("OLD9", occurred_at=NOW - timedelta(days=1))))
    assert store.purge_reads(NOW + timedelta(days=30), batch=2) == 4
    by_id = {e.event_id: e for e in store.events()}
    assert all(by_id[eid].plate is None and by_id[eid].read_text is None for eid in old)
    assert by_id[recent].plate == "NEW1"
    assert store.purge_reads(NOW + timedelta(days=30), batch=2) == 0
