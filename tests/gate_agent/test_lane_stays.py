"""Stays through the lanes, with behaving fakes (scripted reads, a manual clock, a dry-run
barrier): a drive-up admitted at the entry and counted against the drive-up spaces, held at the
exit until paid, let out by the payment without a new read — only while it is the car held
there — and the offline exit policy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent.domain import Direction, EventKind, LotRules, PlateRead, Reason, StayPayment
from gate_agent.lane import Lane
from gate_agent.passes import PassTracker
from gate_agent.store import Store
from hardware.barrier import DryRunBarrier
from hardware.camera import Frame
from parkgate_protocol import parse_policy, price_stay
from tests.gate_agent.test_lane import IMAGE, Clock, ScriptedRecognizer, read

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
POLICY: dict[str, Any] = {
    "version": 1,
    "drive_up": True,
    "drive_up_spaces": 1,
    "pay_before_exit": True,
}


class WallClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:", clock=lambda: T0) as s:
        s.apply_policy(parse_policy(POLICY), POLICY)
        yield s


def lane(
    store: Store,
    direction: Direction,
    reads: list[list[PlateRead]],
    clock: Clock,
    wall: WallClock,
    **kw: Any,
) -> tuple[Lane, DryRunBarrier]:
    barrier = DryRunBarrier(pulse_seconds=0.01)
    built = Lane(
        lot_id="lot-1",
        lane_id=f"{direction}-1",
        direction=direction,
        recognizer=ScriptedRecognizer(*reads),  # type: ignore[arg-type]
        tracker=PassTracker(budget_s=1.5, gap_s=3.0),
        store=store,
        barrier=barrier,
        rules=LotRules(),
        clock=clock,
        wallclock=wall,
        **kw,
    )
    return built, barrier


def pass_once(built: Lane, clock: Clock) -> Reason:
    """One car's pass: a frame, and (for a denial) the time budget running out."""
    outcome = built.process_frame(Frame(image=IMAGE, seq=1, captured_at=clock.t, wall_time=0))
    if outcome is None:
        clock.t += 2
        outcome = built.tick()
    assert outcome is not None
    return outcome.decision.reason


def paid(store: Store, stay_id: str, wall: WallClock, cents: int) -> None:
    payment = StayPayment(stay_id, cents, wall.now, "EUR", "pay-1")
    assert store.apply_stay_payment(payment, "AB123CD")


def drive_up_inside(store: Store, clock: Clock, wall: WallClock) -> str:
    entry, _ = lane(store, Direction.ENTRY, [[read("AB123CD")]], clock, wall)
    assert pass_once(entry, clock) is Reason.DRIVE_UP
    [inside] = store.inside()
    return inside.visit_id


def test_the_last_drive_up_space_then_lot_full(store: Store) -> None:
    clock, wall = Clock(), WallClock()
    entry, barrier = lane(
        store, Direction.ENTRY, [[read("AB123CD")], [read("XY987ZZ")]], clock, wall
    )
    assert pass_once(entry, clock) is Reason.DRIVE_UP
    clock.t += 10  # the first car's pass ends; another car
    assert pass_once(entry, clock) is Reason.LOT_FULL
    assert len(barrier.pulses) == 1
    assert store.inside_counts() == (1, 1)


def test_held_at_the_exit_then_let_out_by_the_payment_without_a_new_read(store: Store) -> None:
    clock, wall = Clock(), WallClock()
    stay = drive_up_inside(store, clock, wall)
    wall.now += timedelta(hours=3)
    exit_, barrier = lane(store, Direction.EXIT, [[read("AB123CD")]], clock, wall)
    assert pass_once(exit_, clock) is Reason.PAYMENT_DUE
    assert barrier.pulses == []
    owed = price_stay(parse_policy(POLICY).tariff, T0, wall.now)
    [held] = store.events(kind="denied")
    assert (held.amount_owed_cents, held.stay_id) == (owed, stay)

    assert exit_.stay_paid("another-stay") is None
    clock.t += 30
    paid(store, stay, wall, owed)
    outcome = exit_.stay_paid(stay)
    assert outcome is not None and outcome.decision.reason is Reason.PAID
    assert len(barrier.pulses) == 1
    kinds = [(e.kind, e.reason, e.stay_id) for e in store.events(lane_id="exit-1")]
    assert kinds == [(EventKind.EXIT, "paid", stay), (EventKind.DENIED, "payment_due", stay)]
    assert store.inside() == []
    assert exit_.stay_paid(stay) is None  # once


def test_a_partial_payment_keeps_the_car_held(store: Store) -> None:
    clock, wall = Clock(), WallClock()
    stay = drive_up_inside(store, clock, wall)
    wall.now += timedelta(hours=3)
    exit_, barrier = lane(store, Direction.EXIT, [[read("AB123CD")]], clock, wall)
    assert pass_once(exit_, clock) is Reason.PAYMENT_DUE
    wall.now += timedelta(minutes=30)  # paid through 30 min ago: past the 15-minute window
    store.apply_stay_payment(
        StayPayment(stay, 100, wall.now - timedelta(minutes=30), "EUR", "p"), "AB123CD"
    )
    assert exit_.stay_paid(stay) is None
    assert barrier.pulses == []


@pytest.mark.parametrize("why", ["window", "sensor", "another-car", "manual"])
def test_a_payment_opens_nothing_once_the_held_car_is_gone(store: Store, why: str) -> None:
    clock, wall = Clock(), WallClock()
    stay = drive_up_inside(store, clock, wall)
    wall.now += timedelta(hours=3)
    present = [True]
    reads = [[read("AB123CD")], [read("QQ555RR")]]
    exit_, barrier = lane(
        store, Direction.EXIT, reads, clock, wall, vehicle_present=lambda: present[0]
    )
    assert pass_once(exit_, clock) is Reason.PAYMENT_DUE
    if why == "window":
        clock.t += 121
    elif why == "sensor":
        present[0] = False
    elif why == "another-car":
        clock.t += 1
        exit_.process_frame(Frame(image=IMAGE, seq=2, captured_at=clock.t, wall_time=0))
    else:
        exit_.manual_open(actor="op", reason="let out, will pay online")
    pulses = len(barrier.pulses)
    paid(store, stay, wall, 10_000)
    assert exit_.stay_paid(stay) is None
    assert len(barrier.pulses) == pulses


def test_offline_exit_open_and_bill_later(store: Store) -> None:
    raw = {**POLICY, "version": 2, "offline_exit": "open_and_bill_later"}
    store.apply_policy(parse_policy(raw), raw)
    clock, wall = Clock(), WallClock()
    drive_up_inside(store, clock, wall)
    wall.now += timedelta(hours=3)
    exit_, barrier = lane(store, Direction.EXIT, [[read("AB123CD")]], clock, wall)
    exit_.link_cloud(lambda: False)
    assert pass_once(exit_, clock) is Reason.BILL_LATER
    [event] = store.events(lane_id="exit-1")
    assert event.amount_owed_cents > 0 and event.kind is EventKind.EXIT
    assert len(barrier.pulses) == 1


def test_offline_exit_hold(store: Store) -> None:
    clock, wall = Clock(), WallClock()
    drive_up_inside(store, clock, wall)
    wall.now += timedelta(hours=3)
    exit_, barrier = lane(store, Direction.EXIT, [[read("AB123CD")]], clock, wall)
    exit_.link_cloud(lambda: False)
    assert pass_once(exit_, clock) is Reason.PAYMENT_DUE
    assert barrier.pulses == []


def test_entry_lanes_sharing_admissions_never_give_a_space_twice(tmp_path: Path) -> None:
    raw = {**POLICY, "version": 2, "drive_up_spaces": 3}
    admissions = threading.Lock()
    with Store(tmp_path / "agent.sqlite3") as store:
        store.apply_policy(parse_policy(raw), raw)
        plates = [f"DU{n:03d}AB" for n in range(12)]
        clocks = [Clock() for _ in plates]
        lanes = [
            lane(store, Direction.ENTRY, [[read(p)]], c, WallClock(), admissions=admissions)[0]
            for p, c in zip(plates, clocks, strict=True)
        ]
        start = threading.Barrier(len(lanes))
        reasons: list[Reason] = []

        def arrive(entry: Lane, clock: Clock) -> None:
            start.wait()
            reasons.append(pass_once(entry, clock))

        threads = [
            threading.Thread(target=arrive, args=pair) for pair in zip(lanes, clocks, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(reasons).count(Reason.DRIVE_UP) == 3
        assert reasons.count(Reason.LOT_FULL) == 9
        assert store.inside_counts() == (3, 3)
