"""Lane logic with behaving fakes: scripted plate reads, a manual clock, a dry-run barrier."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gate_agent.domain import (
    Direction,
    EventKind,
    LotRules,
    PlateRead,
    Reason,
    Reservation,
    ReservationStatus,
)
from gate_agent.lane import Lane, LaneOutcome
from gate_agent.lane_health import ERROR_CHARS, lane_health
from gate_agent.passes import PassTracker
from gate_agent.store import Store
from hardware.barrier import DryRunBarrier
from hardware.camera import Frame
from hardware.errors import BarrierError
from parkgate_protocol import parse_policy

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
IMAGE = np.zeros((48, 64, 3), dtype=np.uint8)


class ScriptedRecognizer:
    """Returns the next scripted list of reads per frame (then nothing)."""

    def __init__(self, *frames: list[PlateRead]) -> None:
        self.frames = list(frames)

    def read(self, image: np.ndarray) -> list[PlateRead]:
        return self.frames.pop(0) if self.frames else []


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FailingBarrier(DryRunBarrier):
    def pulse_open(self, seconds: float | None = None):  # type: ignore[no-untyped-def]
        raise BarrierError("relay board unplugged")


def read(text: str, confidence: float = 0.97) -> PlateRead:
    return PlateRead(text, confidence, (10, 10, 50, 30), tuple([confidence] * len(text)))


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:", clock=lambda: NOW)
    s.upsert_reservation(
        Reservation(
            "bk1",
            "ABC123",
            NOW - timedelta(minutes=5),
            NOW + timedelta(hours=1),
            ReservationStatus.CONFIRMED,
        )
    )
    yield s
    s.close()


@pytest.fixture
def barrier() -> Iterator[DryRunBarrier]:
    b = DryRunBarrier(pulse_seconds=0.05)
    yield b
    b.close()


def make_lane(
    store: Store,
    barrier: DryRunBarrier,
    recognizer: ScriptedRecognizer,
    clock: Clock,
    direction: Direction = Direction.ENTRY,
) -> Lane:
    return Lane(
        lot_id="lot-1",
        lane_id="lane-1",
        direction=direction,
        recognizer=recognizer,  # type: ignore[arg-type]
        tracker=PassTracker(budget_s=1.5, gap_s=3.0),
        store=store,
        barrier=barrier,
        rules=LotRules(),
        clock=clock,
        wallclock=lambda: NOW,
    )


def frame(seq: int, clock: Clock) -> Frame:
    return Frame(image=IMAGE, seq=seq, captured_at=clock.t, wall_time=0.0)


def test_confident_booked_read_opens_on_the_first_frame(
    store: Store, barrier: DryRunBarrier
) -> None:
    clock = Clock()
    outcomes: list[LaneOutcome] = []
    lane = make_lane(store, barrier, ScriptedRecognizer([read("ABC123")]), clock)
    lane.add_listener(outcomes.append)
    outcome = lane.process_frame(frame(1, clock))
    assert outcome is not None and outcome.decision.open
    assert outcome.decision.reason is Reason.RESERVATION_VALID
    assert outcome.frame_to_command_ms is not None
    assert len(barrier.pulses) == 1 and outcomes == [outcome]
    [event] = store.events()
    assert (event.kind, event.visit_id, event.reservation_id) == (
        EventKind.ENTRY,
        outcome.visit_id,
        "bk1",
    )
    assert [p.plate for p in store.inside()] == ["ABC123"]


def unsure_at(text: str, position: int, alternative: str, p: float) -> PlateRead:
    """A read sure but at ``position``, where the OCR also gave ``alternative`` ``p``."""
    odds = tuple(
        ((ch, 1.0 - p), (alternative, p)) if i == position else ((ch, 0.99),)
        for i, ch in enumerate(text)
    )
    chars = tuple(o[0][1] for o in odds)
    return PlateRead(text, sum(chars) / len(chars), (10, 10, 50, 30), chars, char_odds=odds)


def test_an_unsure_character_is_matched_and_the_reason_journaled(
    store: Store, barrier: DryRunBarrier
) -> None:
    clock = Clock()
    lane = make_lane(store, barrier, ScriptedRecognizer([unsure_at("ABC124", 5, "3", 0.4)]), clock)
    outcome = lane.process_frame(frame(1, clock))
    assert outcome is not None and outcome.decision.open and outcome.decision.fuzzy
    assert outcome.decision.match_reason == "unsure 6:4>3 at 0.60 (OCR gave 3 0.400)"
    [event] = store.events()
    assert (event.plate, event.read_text) == ("ABC123", "ABC124")
    assert event.detail["match_reason"] == outcome.decision.match_reason


def test_a_sure_read_of_a_neighbour_never_opens(store: Store, barrier: DryRunBarrier) -> None:
    """ABC124 read sure (the OCR gave 3 only 0.05 there) is another car than the booked ABC123."""
    frames = [[unsure_at("ABC124", 5, "3", 0.05)] for _ in range(3)]
    clock = Clock()
    lane = make_lane(store, barrier, ScriptedRecognizer(*frames), clock)
    assert lane.process_frame(frame(1, clock)) is None
    clock.t += 1.6
    outcome = lane.process_frame(frame(2, clock))
    assert outcome is not None and not outcome.decision.open
    assert outcome.decision.reason is Reason.NO_RESERVATION
    assert outcome.decision.match_reason == "no cached plate explained by the read"
    assert barrier.pulses == []


def test_unknown_plate_waits_for_the_budget_then_denies(
    store: Store, barrier: DryRunBarrier
) -> None:
    clock = Clock()
    lane = make_lane(store, barrier, ScriptedRecognizer([read("XYZ999")], [read("XYZ999")]), clock)
    assert lane.process_frame(frame(1, clock)) is None  # more frames may read better
    clock.t += 0.5
    assert lane.process_frame(frame(2, clock)) is None
    clock.t += 1.1
    outcome = lane.tick()
    assert outcome is not None and not outcome.decision.open
    assert outcome.decision.reason is Reason.NO_RESERVATION
    assert barrier.pulses == []
    assert [(e.kind, e.reason) for e in store.events()] == [(EventKind.DENIED, "no_reservation")]


def test_votes_across_frames_before_opening(store: Store, barrier: DryRunBarrier) -> None:
    clock = Clock()
    recognizer = ScriptedRecognizer([read("A8C123", 0.70)], [read("ABC123", 0.95)])
    lane = make_lane(store, barrier, recognizer, clock)
    assert lane.process_frame(frame(1, clock)) is None  # low confidence: no opening yet
    clock.t += 0.2
    outcome = lane.process_frame(frame(2, clock))
    assert outcome is not None and outcome.decision.open
    assert outcome.decision.plate == "ABC123"
    assert len(store.events()) == 1


def test_same_car_is_one_pass_and_returns_later_as_a_new_one(
    store: Store, barrier: DryRunBarrier
) -> None:
    clock = Clock()
    exit_lane = make_lane(
        store,
        barrier,
        ScriptedRecognizer([read("ABC123")], [read("ABC123")], [read("ABC123")]),
        clock,
        Direction.EXIT,
    )
    first = exit_lane.process_frame(frame(1, clock))
    clock.t += 0.5
    assert exit_lane.process_frame(frame(2, clock)) is None  # same car still in view
    clock.t += 10  # gone for longer than the gap
    again = exit_lane.process_frame(frame(3, clock))
    assert first is not None and again is not None
    assert first.visit_id != again.visit_id
    assert [e.kind for e in store.events()] == [EventKind.EXIT, EventKind.EXIT]


def test_presence_without_a_read_is_journaled_as_no_plate(
    store: Store, barrier: DryRunBarrier
) -> None:
    clock = Clock()
    lane = make_lane(store, barrier, ScriptedRecognizer(), clock)
    lane.presence_arrived()
    assert lane.tick() is None
    clock.t += 2
    outcome = lane.tick()
    assert outcome is not None and outcome.decision.reason is Reason.NO_PLATE
    assert barrier.pulses == []


def test_barrier_fault_is_journaled_after_the_decision(store: Store) -> None:
    clock = Clock()
    broken = FailingBarrier(pulse_seconds=0.05)
    try:
        lane = make_lane(store, broken, ScriptedRecognizer([read("ABC123")]), clock)
        outcome = lane.process_frame(frame(1, clock))
    finally:
        broken.close()
    assert outcome is not None and outcome.barrier_error == "relay board unplugged"
    assert outcome.frame_to_command_ms is None
    kinds = [e.kind for e in reversed(store.events())]
    assert kinds == [EventKind.ENTRY, EventKind.BARRIER_FAULT]
    assert lane.status.last_error == "relay board unplugged"


def test_manual_open_needs_a_reason_and_is_audited(store: Store, barrier: DryRunBarrier) -> None:
    lane = make_lane(store, barrier, ScriptedRecognizer(), Clock())
    with pytest.raises(ValueError, match="reason is required"):
        lane.manual_open(actor="olga", reason="   ")
    assert barrier.pulses == [] and store.audit_log() == []
    outcome = lane.manual_open(actor="olga", reason="ticket machine broken")
    assert outcome.decision.reason is Reason.MANUAL_OPEN and len(barrier.pulses) == 1
    [entry] = store.audit_log()
    assert (entry.actor, entry.action, entry.reason) == (
        "olga",
        "manual_open",
        "ticket machine broken",
    )
    [event] = store.events()
    assert event.kind is EventKind.MANUAL_OPEN and event.detail["actor"] == "olga"


def test_commissioning_preview_neither_journals_nor_pulses(
    store: Store, barrier: DryRunBarrier
) -> None:
    lane = make_lane(store, barrier, ScriptedRecognizer([read("ABC123")]), Clock())
    outcome = lane.evaluate_image(IMAGE, act=False)
    assert outcome.decision.open and outcome.event_id == ""
    assert barrier.pulses == [] and store.events() == []


def test_agent_restarts_a_crashed_lane_loop(tmp_path, dataset_dir) -> None:  # type: ignore[no-untyped-def]
    from devservices import wait_for
    from gate_agent.app import build_agent
    from gate_agent.config import parse_config

    class Flaky(ScriptedRecognizer):
        calls = 0

        def read(self, image: np.ndarray) -> list[PlateRead]:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("onnxruntime: bad frame")
            return []

    frames = dataset_dir / "eu"
    config = parse_config(
        {
            "lot": {"id": "lot-1", "data_dir": str(tmp_path)},
            "web": {"enabled": False},
            "lanes": [
                {
                    "id": "in",
                    "direction": "entry",
                    "camera": {"kind": "replay", "path": str(frames), "fps": 0},
                    "barrier": {"kind": "dry-run"},
                }
            ],
        }
    )
    agent = build_agent(config, recognizer=Flaky()).start()  # type: ignore[arg-type]
    try:
        wait_for(lambda: Flaky.calls >= 3, timeout=10, what="the lane to run again")
        assert "RuntimeError" in (agent.lanes["in"].status.last_error or "")
    finally:
        agent.stop()


def test_an_uploaded_photo_never_joins_the_cameras_pass(
    store: Store, barrier: DryRunBarrier
) -> None:
    clock = Clock()
    recognizer = ScriptedRecognizer([read("XYZ999")], [read("ABC123")], [read("XYZ999")])
    lane = make_lane(store, barrier, recognizer, clock)
    assert lane.process_frame(frame(1, clock)) is None  # the camera watches an unknown car
    preview = lane.evaluate_image(IMAGE, act=False)  # an operator tries a booked plate's photo
    assert preview.decision.open and store.events() == []
    clock.t += 2  # the camera's pass runs out of time: it must not open for the uploaded plate
    outcome = lane.process_frame(frame(2, clock))
    assert outcome is not None and outcome.decision.reason is Reason.NO_RESERVATION
    assert barrier.pulses == []


def test_lane_health_without_a_frame_has_no_age_and_no_error(
    store: Store, barrier: DryRunBarrier
) -> None:
    lane = make_lane(store, barrier, ScriptedRecognizer(), Clock(), Direction.EXIT)
    [health] = lane_health([lane], clock=lambda: 500.0)
    assert (health.lane_id, health.direction, health.frames) == ("lane-1", Direction.EXIT, 0)
    assert health.last_frame_age_s is None and health.last_error is None


def test_lane_health_reads_frames_frame_age_and_a_cut_error_from_the_status(
    store: Store, barrier: DryRunBarrier
) -> None:
    clock = Clock()
    lane = make_lane(store, barrier, ScriptedRecognizer(), clock)
    lane.process_frame(frame(1, clock))
    lane.process_frame(frame(2, clock))
    lane.status.last_error = "x" * (ERROR_CHARS + 50)
    [health] = lane_health([lane], clock=lambda: clock.t + 2.5)
    [early] = lane_health([lane], clock=lambda: clock.t - 1.0)  # a frame stamped ahead of now
    assert health.frames == 2 and health.last_frame_age_s == pytest.approx(2.5)
    assert health.last_error == "x" * ERROR_CHARS
    assert early.last_frame_age_s == 0.0


def test_a_new_policy_counts_from_the_next_decision_without_a_restart(
    store: Store, barrier: DryRunBarrier
) -> None:
    """The fall-back (hard anti-passback) holds a car recorded inside; once the cloud policy
    turns anti-passback off, the same lane object lets it in on its next pass."""
    clock = Clock()
    lane = make_lane(store, barrier, ScriptedRecognizer(*[[read("ABC123")]] * 3), clock)
    assert lane.current_rules() is lane.rules
    first = lane.process_frame(frame(1, clock))
    assert first is not None and first.decision.reason is Reason.RESERVATION_VALID
    clock.t += 10
    lane.process_frame(frame(2, clock))
    clock.t += 1.6
    second = lane.tick()
    assert second is not None and second.decision.reason is Reason.ALREADY_INSIDE
    raw = {"version": 2, "anti_passback": "off"}
    store.apply_policy(parse_policy(raw), raw)
    clock.t += 10
    third = lane.process_frame(frame(3, clock))
    assert third is not None and third.decision.reason is Reason.RESERVATION_VALID
    assert lane.current_rules().anti_passback.value == "off"
    assert lane.current_rules() is lane.current_rules()  # built once per policy


def test_a_booking_is_used_up_by_its_exit_even_before_the_cloud_says_so(
    store: Store, barrier: DryRunBarrier
) -> None:
    """Leave early (the cloud credits the unused time) and come back in on the same booking
    while the lot is offline: the gate completes the booking with the exit's own commit, as the
    cloud does when the exit reaches it, so the second entry is refused."""
    clock = Clock()
    entry = make_lane(store, barrier, ScriptedRecognizer([read("ABC123")]), clock)
    assert entry.process_frame(frame(1, clock)).decision.open  # type: ignore[union-attr]
    clock.t += 60
    exit_lane = make_lane(
        store, barrier, ScriptedRecognizer([read("ABC123")]), clock, Direction.EXIT
    )
    left = exit_lane.process_frame(frame(2, clock))
    assert left is not None and left.decision.open and left.decision.reservation_id == "bk1"
    cached = store.get_reservation("bk1")
    assert cached is not None and cached.status is ReservationStatus.COMPLETED
    clock.t += 60
    again = make_lane(store, barrier, ScriptedRecognizer([read("ABC123")]), clock)
    assert again.process_frame(frame(3, clock)) is None  # a denial waits out the pass budget
    clock.t += 1.6
    back = again.tick()
    assert back is not None and not back.decision.open
    assert back.decision.reason is Reason.EXPIRED
    journaled = [(e.kind, e.reason) for e in reversed(store.events())]
    assert journaled == [
        (EventKind.ENTRY, "reservation_valid"),
        (EventKind.EXIT, "exit_paid"),
        (EventKind.DENIED, "expired"),
    ]
