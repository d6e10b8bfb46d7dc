"""A drive-up visitor end to end at a real agent over a real Mosquitto: the lot's policy (drive-ups
admitted, pay before exit) arrives on the lot's reservation topic, the photo of an unbooked plate
at the entry opens with ``drive_up``, the same photo at the exit is held with ``payment_due`` and
the stay's price, and a ``stay_paid`` change published for that stay opens the exit barrier (the
mock GPIO relay pulses) within 2 s, without a new camera read. The heartbeat counts the car."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

import parkgate_protocol as p
from devservices import MosquittoInstance, wait_for
from gate_agent.app import Agent, build_agent
from gate_agent.config import parse_config
from gate_agent.domain import EventKind, Reason
from gate_agent.recognition import Recognizer
from tests.support.agents import BOOKED_PHOTO
from tests.support.sync import CloudPeer

pytestmark = pytest.mark.integration

LOT = "lot-pay"
ENTRY_PIN, EXIT_PIN = 17, 18
TARIFF = {"vehicles": {"car": {"rate_cents": 250, "daily_max_cents": 1500}}}
POLICY: dict[str, Any] = {
    "version": 1,
    "drive_up": True,
    "drive_up_spaces": 5,
    "pay_before_exit": True,
    "tariff": TARIFF,
}


def lane(lane_id: str, direction: str, pin: int, frames: Path) -> dict[str, Any]:
    return {
        "id": lane_id,
        "direction": direction,
        "camera": {"kind": "replay", "path": str(frames), "fps": 1, "loop": False},
        "barrier": {"kind": "gpio", "pin": pin, "pulse_seconds": 0.3, "mock": True},
    }


@pytest.fixture
def agent(
    tmp_path: Path, mosquitto: MosquittoInstance, recognizer: Recognizer, pins: MockFactory
) -> Iterator[Agent]:
    """An entry and an exit lane whose cameras see an empty road (photos come by hand)."""
    frames = tmp_path / "road"
    frames.mkdir()
    cv2.imwrite(str(frames / "empty.jpg"), np.zeros((240, 320, 3), dtype=np.uint8))
    config = parse_config(
        {
            "lot": {"id": LOT, "data_dir": str(tmp_path / "agent")},
            "web": {"enabled": False},
            "sync": {
                "enabled": True,
                "broker_host": mosquitto.host,
                "broker_port": mosquitto.port,
                "heartbeat_seconds": 0.5,
            },
            "lanes": [
                lane("entry-1", "entry", ENTRY_PIN, frames),
                lane("exit-1", "exit", EXIT_PIN, frames),
            ],
        }
    )
    built = build_agent(config, recognizer=recognizer, pin_factory=pins).start()
    yield built
    built.stop()


def change(seq: int, kind: p.ChangeKind, **payload: Any) -> bytes:
    return p.encode(p.ReservationChange(lot_id=LOT, seq=seq, kind=kind, **payload))


def pulses(pins: MockFactory, pin: int) -> list[float]:
    """When the relay on ``pin`` was switched on."""
    return [s.timestamp for s in pins.pin(pin).states if s.state]


def test_a_drive_up_pays_and_the_held_exit_opens_without_a_new_read(
    agent: Agent, mosquitto: MosquittoInstance, pins: MockFactory, dataset_dir: Path
) -> None:
    cloud = CloudPeer(mosquitto, LOT)
    try:
        assert agent.sync is not None
        wait_for(
            lambda: agent.sync is not None and agent.sync.status.subscribed, what="agent online"
        )
        cloud.send("reservations", change(1, p.ChangeKind.POLICY, policy=POLICY))
        wait_for(lambda: agent.store.policy is not None, what="policy in force")

        photo = cv2.imread(str(dataset_dir / BOOKED_PHOTO))
        entered = agent.lanes["entry-1"].evaluate_image(photo)
        assert (entered.decision.open, entered.decision.reason) == (True, Reason.DRIVE_UP)
        wait_for(lambda: bool(pulses(pins, ENTRY_PIN)), what="entry barrier pulse")

        def inside(status: p.Status) -> bool:
            return status.cars_inside == 1 and status.drive_up_inside == 1

        wait_for(lambda: any(inside(s) for s in cloud.statuses()), what="heartbeat: car inside")

        held = agent.lanes["exit-1"].evaluate_image(photo)
        decision = held.decision
        assert (decision.open, decision.reason) == (False, Reason.PAYMENT_DUE)
        assert decision.stay_id == entered.visit_id
        assert decision.amount_owed_cents == 250  # the first started hour, however short
        assert pulses(pins, EXIT_PIN) == []

        plate = decision.plate
        assert plate is not None
        payment = p.StayPayment(
            stay_id=decision.stay_id,
            plate=plate,
            paid_cents=250,
            currency="EUR",
            paid_through=datetime.now(UTC),
            payment_id="pay-1",
        )
        published_at = time.monotonic()
        cloud.send("reservations", change(2, p.ChangeKind.STAY_PAID, stay_payment=payment))
        wait_for(lambda: bool(pulses(pins, EXIT_PIN)), timeout=2, what="exit barrier pulse")
        print(f"stay_paid published -> exit relay on: {time.monotonic() - published_at:.3f} s")

        exits = agent.store.events(lane_id="exit-1")
        assert [(e.kind, e.reason, e.stay_id) for e in exits] == [
            (EventKind.EXIT, "paid", entered.visit_id),
            (EventKind.DENIED, "payment_due", entered.visit_id),
        ]
        assert agent.store.inside() == []

        def counted(status: p.Status) -> bool:
            return status.cars_inside == 0 and status.drive_up_inside == 0

        wait_for(lambda: any(counted(s) for s in cloud.statuses()), what="heartbeat count")
        assert all(s.clock_offset_s is None or abs(s.clock_offset_s) < 5 for s in cloud.statuses())
    finally:
        cloud.close()
