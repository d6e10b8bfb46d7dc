"""The agent's records to and from the wire models (``gate_agent.wire``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import parkgate_protocol as p
from gate_agent import wire
from gate_agent.domain import (
    Direction,
    EventKind,
    JournalEvent,
    ListEntry,
    ListKind,
    Reservation,
    ReservationStatus,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_reservation_round_trip() -> None:
    cached = Reservation(
        id="bk_1",
        plate="AB123CD",
        starts_at=T0,
        ends_at=T0 + timedelta(hours=2),
        status=ReservationStatus.CONFIRMED,
        amount_owed_cents=250,
        currency="EUR",
        space_label="A-1",
    )
    snapshot = wire.reservation_snapshot(cached)
    assert (
        p.parse_reservation_change(
            p.encode(
                p.ReservationChange(lot_id="lot-a", seq=1, kind="upsert", reservation=snapshot)
            )
        ).reservation
        == snapshot
    )
    assert wire.reservation(snapshot) == cached


def test_list_entry() -> None:
    snapshot = p.ListEntrySnapshot(plate="ZZ9", kind=p.ListKind.DENY, valid_until=T0, note="x")
    assert wire.list_entry(snapshot) == ListEntry("ZZ9", ListKind.DENY, None, T0, "x")
    assert wire.list_entry_snapshot(wire.list_entry(snapshot)) == snapshot


def test_list_entry_with_id_category_and_lanes() -> None:
    snapshot = p.ListEntrySnapshot(
        entry_id="e1",
        plate="STAFF1",
        kind=p.ListKind.ALLOW,
        category=p.AccessCategory.STAFF,
        lanes=["entry-1"],
    )
    cached = wire.list_entry(snapshot)
    assert cached == ListEntry(
        "STAFF1", ListKind.ALLOW, entry_id="e1", category="staff", lanes=("entry-1",)
    )
    assert wire.list_entry_snapshot(cached) == snapshot


def test_gate_event_from_journal_round_trip() -> None:
    journaled = JournalEvent(
        lot_id="lot-a",
        kind=EventKind.ENTRY,
        lane_id="entry-1",
        direction=Direction.ENTRY,
        visit_id="v1",
        plate="AB123CD",
        confidence=0.97,
        reason="reservation_valid",
        occurred_at=T0,
        image_path="/var/lib/parkgate/x.jpg",
        detail={"flags": []},
        stay_id="v1",
    )
    event = wire.gate_event(journaled)
    assert event.event_id == journaled.event_id
    assert event.stay_id == "v1"
    encoded = p.encode(event)
    assert b"image_path" not in encoded
    assert p.parse_gate_event(encoded) == event


def test_the_journal_records_the_wire_kinds() -> None:
    assert EventKind is p.GateEventKind
