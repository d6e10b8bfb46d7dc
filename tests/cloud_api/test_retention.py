"""The retention job: plates blanked after their period (amounts and times kept), the change feed
trimmed only where no gate can still need it, dead letters deleted after their period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.lot_sync import GateEventRecord, IngestDeadLetter, LotStatus
from cloud_api.models import Booking, Lot, LotChange, OutboxMessage
from cloud_api.outbox import DeadLetter
from cloud_api.retention import RetentionRules, run_retention
from devservices import World
from tests.cloud_api.test_api import body
from tests.support.cloud import T0, Clock, TestClient, allow_unpaid_holds

D = timedelta(days=1)
H = timedelta(hours=1)


def _event(event_id: str, lot_id: int, ago: timedelta, reservation: str | None = None) -> Any:
    return GateEventRecord(
        event_id=event_id,
        lot_id=lot_id,
        kind="entry",
        reservation_id=reservation,
        plate="AB123CD",
        occurred_at=T0 - ago,
        payload={"event_id": event_id, "plate": "AB123CD", "read": {"plate_text": "AB123CD"}},
    )


def test_event_plates_are_blanked_after_the_period(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as s:
        s.add_all([_event("old", world.lot_id, 31 * D), _event("new", world.lot_id, 29 * D)])
    swept = run_retention(session_factory, RetentionRules(plates=30 * D), T0)
    assert swept.event_plates == 1
    with session_factory() as s:
        old, new = s.get_one(GateEventRecord, "old"), s.get_one(GateEventRecord, "new")
        assert old.plate is None and old.payload == {"event_id": "old", "read": {}}
        assert old.occurred_at == T0 - 31 * D and old.kind == "entry"
        assert new.plate == "AB123CD" and new.payload["plate"] == "AB123CD"


def _book(client: TestClient, world: World, clock: Clock, slot: int = 0) -> str:
    window = body(world, clock, (1 + 4 * slot) * H, (3 + 4 * slot) * H)
    r = client.post("/bookings", json=window, headers=world.auth("alice"))
    assert r.status_code == 201, r.text
    return str(r.json()["booking_id"])


def test_booking_plates_are_blanked_after_the_stay_ended_not_before(
    client: TestClient,
    world: World,
    clock: Clock,
    session_factory: sessionmaker[Session],
    database_url: str,
) -> None:
    allow_unpaid_holds(database_url, world.lot_id)  # four bookings by one customer
    ids = [_book(client, world, clock, slot) for slot in range(4)]
    gone, running, owing, inside = ids
    long_ago = T0 - 40 * D
    with session_factory.begin() as s:
        for bid in ids:
            b = s.get_one(Booking, bid)
            b.status, b.start_time, b.end_time = "completed", long_ago - H, long_ago
            b.arrived_at, b.exited_at = long_ago - H, long_ago
        s.get_one(Booking, running).status = "confirmed"
        s.get_one(Booking, running).end_time = T0 + H
        s.get_one(Booking, running).exited_at = None
        s.get_one(Booking, owing).amount_owed_cents = 500
        s.get_one(Booking, inside).exited_at = None
        price = s.get_one(Booking, gone).price_cents
    swept = run_retention(session_factory, RetentionRules(plates=30 * D), T0)
    assert swept.booking_plates == 1
    with session_factory() as s:
        kept = s.get_one(Booking, gone)
        assert kept.plate == "" and kept.price_cents == price and kept.end_time == long_ago
        for bid in (running, owing, inside):
            assert s.get_one(Booking, bid).plate == "AB123", bid


def _snapshot_payload(seq: int) -> dict[str, Any]:
    return {
        "id": f"bk_{seq:016d}",
        "plate": "AB123",
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + H).isoformat(),
        "status": "confirmed",
        "amount_owed_cents": 0,
        "currency": "EUR",
        "space_label": None,
    }


def _feed(s: Session, lot_id: int, latest: int, unrelayed: set[int]) -> None:
    s.get_one(Lot, lot_id).change_seq = latest
    s.add_all(
        LotChange(
            lot_id=lot_id,
            seq=seq,
            kind="created",
            payload=_snapshot_payload(seq),
            created_at=T0,
            relayed_at=None if seq in unrelayed else T0,
        )
        for seq in range(1, latest + 1)
    )


def _seqs(s: Session, lot_id: int) -> list[int]:
    return list(s.scalars(select(LotChange.seq).where(LotChange.lot_id == lot_id)))


def test_the_feed_keeps_what_a_gate_may_still_read(
    client: TestClient, world: World, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as s:
        _feed(s, world.lot_id, 1500, unrelayed={3})
        s.add(LotStatus(lot_id=world.lot_id, state="online", last_applied_seq=1200, lanes=[]))
        _feed(s, world.other_lot_id, 1200, unrelayed=set())  # its gate never reported
    swept = run_retention(session_factory, RetentionRules(), T0)
    assert swept.feed_rows == 499  # 1..500 (1500 - horizon 1000) but the unrelayed seq 3
    with session_factory() as s:
        assert sorted(_seqs(s, world.lot_id)) == [3, *range(501, 1501)]
        assert len(_seqs(s, world.other_lot_id)) == 1200

    feed = f"/lots/{world.lot_id}/changes"
    behind = client.get(feed, params={"since": 100}, headers=world.auth("device")).json()
    assert behind["snapshot"] is True  # the gap is seen: a snapshot, never a silent skip
    page = client.get(feed, params={"since": 600, "limit": 1000}, headers=world.auth("device"))
    page = page.json()
    assert page["snapshot"] is False and page["changes"][0]["seq"] == 601


def test_a_gate_behind_its_applied_seq_keeps_its_rows(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as s:
        _feed(s, world.lot_id, 1500, unrelayed=set())
        s.add(LotStatus(lot_id=world.lot_id, state="online", last_applied_seq=200, lanes=[]))
    run_retention(session_factory, RetentionRules(), T0)
    with session_factory() as s:
        assert min(_seqs(s, world.lot_id)) == 201


def test_dead_letters_go_after_their_period(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    old, new = T0 - 31 * D, T0 - 29 * D
    with session_factory.begin() as s:
        for i, at in enumerate((old, new)):
            s.add(
                DeadLetter(
                    outbox_id=i, kind="k", payload={}, attempts=8, last_error="x", created_at=at
                )
            )
            s.add(IngestDeadLetter(topic="t", reason="invalid", received_at=at))
            s.add(OutboxMessage(kind="k", payload={}, created_at=at, dead=True))
        s.add(OutboxMessage(kind="k", payload={}, created_at=old))  # waiting: never trimmed
    swept = run_retention(session_factory, RetentionRules(dead_letters=30 * D), T0)
    assert swept.dead_letters == 3
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 1
        assert s.scalar(select(func.count()).select_from(IngestDeadLetter)) == 1
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 2
