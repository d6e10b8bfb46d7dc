"""Booking QR codes at the lane: real dataset photos with a code in view (printed, or on a phone
held up: tilted, blurred), the real recognizer and QR reader; each refusal journaled with its
reason, the plate read kept beside the code."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from gate_agent.code_reader import CodeReader
from gate_agent.domain import Direction, EventKind, LotRules, Reason, Reservation, ReservationStatus
from gate_agent.lane import Lane, LaneOutcome
from gate_agent.passes import PassTracker
from gate_agent.recognition import Recognizer
from gate_agent.store import Store
from hardware.barrier import DryRunBarrier
from hardware.camera import Frame
from tests.support.agents import BOOKED_PHOTO
from tests.support.codes import KEY, OTHER_KEY, code_for, on_phone, pasted, qr_image

NOW = datetime.now(UTC).replace(microsecond=0)
H = timedelta(hours=1)
UNKNOWN_PHOTO = "us/1e241dc8-8f18-4955-8988-03a0ab49f813.jpg"  # plate CCLVN3
EU_PHOTO = "eu/eu1.jpg"
PLATE_ON_PHOTO = "K179658"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def reservation(rid: str, status: ReservationStatus = ReservationStatus.CONFIRMED) -> Reservation:
    return Reservation(rid, f"QR{rid[-3:].upper()}1", NOW - H, NOW + 2 * H, status)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "gate.db")
    s.replace_access_keys([KEY])
    s.upsert_reservations(
        [
            reservation("bk_ok1"),
            reservation("bk_ok2"),
            reservation("bk_gone", ReservationStatus.CANCELLED),
        ]
    )
    yield s
    s.close()


@pytest.fixture
def barrier() -> Iterator[DryRunBarrier]:
    b = DryRunBarrier(pulse_seconds=0.05)
    yield b
    b.close()


def make_lane(store: Store, barrier: DryRunBarrier, recognizer: Recognizer, clock: Clock) -> Lane:
    return Lane(
        lot_id="lot-1",
        lane_id="in-1",
        direction=Direction.ENTRY,
        recognizer=recognizer,
        tracker=PassTracker(budget_s=1.5, gap_s=3.0),
        store=store,
        barrier=barrier,
        rules=LotRules(),
        clock=clock,
        code_reader=CodeReader(interval_s=0.0),
    )


def photo(dataset_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(dataset_dir / name))
    assert image is not None, name
    return image


def shown(lane: Lane, image: np.ndarray, clock: Clock, seq: int) -> LaneOutcome | None:
    clock.t += 0.2
    return lane.process_frame(Frame(image=image, seq=seq, captured_at=clock.t, wall_time=0.0))


def test_a_code_held_up_opens_once_and_keeps_the_plate_read(
    store: Store, barrier: DryRunBarrier, recognizer: Recognizer, dataset_dir: Path
) -> None:
    clock = Clock()
    lane = make_lane(store, barrier, recognizer, clock)
    frame = pasted(
        photo(dataset_dir, BOOKED_PHOTO), qr_image(code_for("bk_ok1", NOW + 3 * H)), 40, 40
    )
    outcome = shown(lane, frame, clock, 1)
    assert outcome is not None and outcome.decision.open
    assert outcome.decision.reason is Reason.BOOKING_CODE
    assert len(barrier.pulses) == 1
    [event] = store.events()
    assert (event.kind, event.reason, event.reservation_id) == (
        EventKind.ENTRY,
        "booking_code",
        "bk_ok1",
    )
    assert event.plate == "QROK11" and event.read_text == PLATE_ON_PHOTO  # the camera's read kept
    assert "plate_differs" in event.detail["flags"]
    assert [p.plate for p in store.inside()] == ["QROK11"]
    # still held up: not decided again; shown again later (a copy, a second car): code_used
    assert shown(lane, frame, clock, 2) is None or len(store.events()) == 1
    assert len(store.events()) == 1 and len(barrier.pulses) == 1
    clock.t += 10
    replay = shown(lane, frame, clock, 3)
    assert replay is not None and not replay.decision.open
    assert replay.decision.reason is Reason.CODE_USED and len(barrier.pulses) == 1


def test_a_phone_screen_tilted_and_blurred_is_read(
    store: Store, barrier: DryRunBarrier, recognizer: Recognizer, dataset_dir: Path
) -> None:
    clock = Clock()
    lane = make_lane(store, barrier, recognizer, clock)
    qr = qr_image(code_for("bk_ok2", NOW + 3 * H), module_px=5)
    frame = on_phone(photo(dataset_dir, UNKNOWN_PHOTO), qr, angle=17, blur=5, x=60, y=20)
    outcome = shown(lane, frame, clock, 1)
    assert outcome is not None and outcome.decision.reason is Reason.BOOKING_CODE
    assert outcome.decision.open and len(barrier.pulses) == 1


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (code_for("bk_ok1", NOW + 3 * H, key=OTHER_KEY), Reason.CODE_INVALID),
        (code_for("bk_ok1", NOW + 3 * H, lot_id="lot-2"), Reason.CODE_OTHER_LOT),
        (code_for("bk_ok1", NOW - timedelta(minutes=1)), Reason.CODE_EXPIRED),
        (code_for("bk_gone", NOW + 3 * H), Reason.CODE_CANCELLED),
    ],
    ids=["forged", "other-lot", "expired", "cancelled"],
)
def test_a_bad_code_is_refused_with_its_reason_and_journaled(
    store: Store,
    barrier: DryRunBarrier,
    recognizer: Recognizer,
    dataset_dir: Path,
    code: str,
    reason: Reason,
) -> None:
    clock = Clock()
    lane = make_lane(store, barrier, recognizer, clock)
    frame = pasted(photo(dataset_dir, EU_PHOTO), qr_image(code, module_px=4), 10, 10)
    outcome = shown(lane, frame, clock, 1)
    assert outcome is not None and not outcome.decision.open
    assert outcome.decision.reason is reason and barrier.pulses == []
    [event] = store.events()
    assert (event.kind, event.reason) == (EventKind.DENIED, reason.value)
    assert "booking_code" in event.detail["flags"]
    assert store.inside() == []


def test_a_qr_code_that_is_not_an_access_code_is_ignored(
    store: Store, barrier: DryRunBarrier, recognizer: Recognizer, dataset_dir: Path
) -> None:
    clock = Clock()
    lane = make_lane(store, barrier, recognizer, clock)
    frame = pasted(photo(dataset_dir, EU_PHOTO), qr_image("https://example.com/menu", 4), 10, 10)
    assert shown(lane, frame, clock, 1) is None and store.events() == []
