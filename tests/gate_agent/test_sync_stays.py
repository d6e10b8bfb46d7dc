"""Stays over the sync link: ``stay_paid`` changes (pushed over a real Mosquitto or fetched by the
catch-up) are kept for the stay's car inside and told to the lanes; a snapshot after them loses
nothing; a payment for a car gone is not kept; the clock offset measured from the cloud's acks is
journaled when it moves, and goes with the cars inside in the heartbeat."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import parkgate_protocol as p
from devservices import MosquittoInstance, wait_for
from gate_agent.domain import StayKind
from gate_agent.store import Store
from gate_agent.sync._clock import ClockOffset
from gate_agent.sync._feed import ReservationFeed
from tests.support.sync import CloudPeer, FakeCloud, car_inside, feed_for, start_sync

LOT = "lot-a"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "agent.sqlite3") as s:
        yield s


def drive_up(store: Store, plate: str, stay: str) -> None:
    car_inside(store, plate, stay, at=T0, kind=StayKind.DRIVE_UP, lot_id=LOT)


def payment(stay: str, plate: str = "AB123CD", cents: int = 500) -> p.StayPayment:
    return p.StayPayment(
        stay_id=stay, plate=plate, paid_cents=cents, paid_through=T0, payment_id="p1"
    )


def feed(store: Store, cloud: FakeCloud, tmp_path: Path, told: list[str]) -> ReservationFeed:
    return feed_for(store, cloud, tmp_path, on_stay_paid=told.append)


def test_catch_up_keeps_stay_payments_and_tells_the_lanes_then_a_snapshot_keeps_them(
    store: Store, tmp_path: Path
) -> None:
    drive_up(store, "AB123CD", "s1")
    cloud, told = FakeCloud(LOT), []
    cloud.stay_paid(payment("s1", cents=300))
    cloud.stay_paid(payment("s1", cents=750))
    cloud.stay_paid(payment("gone", plate="ZZ111ZZ"))  # its car left: not kept, not told
    sync = feed(store, cloud, tmp_path, told)
    assert sync.catch_up() == 3
    assert told == ["s1", "s1"]
    kept = store.stay_payment("s1")
    assert kept is not None and kept.paid_cents == 750
    assert store.stay_payment("gone") is None
    assert sync.catch_up(full=True) == 0  # a snapshot: reservations and lists, never payments
    assert store.facts_for("AB123CD", 0.95).stay_payment == kept
    sync.close()


def test_a_pushed_stay_paid_reaches_the_store_and_the_lanes(
    mosquitto: MosquittoInstance, store: Store, tmp_path: Path
) -> None:
    drive_up(store, "AB123CD", "s1")
    cloud = FakeCloud(LOT)
    client = start_sync(mosquitto, store, cloud, tmp_path)
    peer = CloudPeer(mosquitto, LOT)
    told: list[str] = []
    client.feed._on_stay_paid = told.append
    try:
        peer.send("reservations", p.encode(cloud.stay_paid(payment("s1"))))
        wait_for(lambda: told == ["s1"], what="the lanes told")
        assert store.stay_payment("s1") is not None
    finally:
        client.stop()
        peer.close()


def test_the_clock_offset_is_measured_from_acks_journaled_and_sent(
    mosquitto: MosquittoInstance, store: Store, tmp_path: Path
) -> None:
    drive_up(store, "AB123CD", "s1")
    client = start_sync(mosquitto, store, FakeCloud(LOT), tmp_path)
    peer = CloudPeer(mosquitto, LOT, acks=False)
    try:
        cloud_clock = datetime.now(UTC) - timedelta(seconds=90)  # the Pi is 90 s ahead
        ack = p.EventAck(lot_id=LOT, event_ids=["e-unknown"], acked_at=cloud_clock)
        peer.send("acks", p.encode(ack))
        wait_for(lambda: store.events(kind="health"), what="the offset journaled")
        [event] = store.events(kind="health")
        assert event.reason == "clock_offset"
        assert 89 < event.detail["clock_offset_s"] < 95
        offset = client.status.clock_offset_s
        assert offset is not None and 89 < offset < 95

        def reported(status: p.Status) -> bool:
            return status.clock_offset_s is not None and status.cars_inside == 1

        wait_for(lambda: any(reported(s) for s in peer.statuses()), what="heartbeat")
        assert any(s.drive_up_inside == 1 for s in peer.statuses() if reported(s))
    finally:
        client.stop()
        peer.close()


def test_clock_offset_journals_when_it_moves_past_the_threshold() -> None:
    clock = ClockOffset(threshold_s=5)
    assert clock.offset_s is None
    assert clock.observe(T0 + timedelta(seconds=1), T0) is None  # small: nothing to say
    assert clock.observe(T0 + timedelta(seconds=0.4), T0) is None
    assert clock.offset_s == 0.4  # the quickest ack is the best estimate
    skewed = ClockOffset(threshold_s=5)
    assert skewed.observe(T0 - timedelta(seconds=30), T0) == -30
    assert skewed.observe(T0 - timedelta(seconds=29), T0) is None  # the same, a slower ack
    # the clock was fixed: newer samples replace the old ones, and the move is journaled once
    moves = [skewed.observe(T0, T0) for _ in range(10)]
    assert [m for m in moves if m is not None] == [0]
    assert skewed.offset_s == 0 == skewed.journaled_s
