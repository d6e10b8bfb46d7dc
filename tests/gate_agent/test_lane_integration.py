"""The edge lane end to end: a real photo → real recognizer → cache → mock GPIO pin → journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from devservices import wait_for
from gate_agent.app import Agent, build_agent
from gate_agent.config import parse_config
from gate_agent.domain import EventKind, Reservation, ReservationStatus
from gate_agent.recognition import Recognizer
from gate_agent.store import Store
from tests.support.agents import one_lane_config
from tests.support.agents import photo_folder as support_photo_folder

BOOKED_PHOTO = "us/316b64c0-55bf-4079-a1c0-d93f461a576f.jpg"  # plate K179658
UNKNOWN_PHOTO = "us/1e241dc8-8f18-4955-8988-03a0ab49f813.jpg"  # plate CCLVN3
PULSE_S = 0.3
BARRIER_PIN = 17


def photo_folder(tmp_path: Path, dataset_dir: Path, photo: str) -> Path:
    """A replay folder holding one dataset photo (linked, not copied)."""
    return support_photo_folder(tmp_path / "frames", dataset_dir / photo)


def agent_config(tmp_path: Path, frames: Path, fps: float = 10.0) -> dict[str, Any]:
    return one_lane_config(
        lot_id="lot-1",
        data_dir=tmp_path / "data",
        frames=frames,
        pin=BARRIER_PIN,
        pulse_seconds=PULSE_S,
        fps=fps,
        passes={"budget_seconds": 0.8, "gap_seconds": 30},
    )


def booking(plate: str) -> Reservation:
    now = datetime.now(UTC)
    return Reservation(
        id="bk_test1",
        plate=plate,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=2),
        status=ReservationStatus.CONFIRMED,
        space_label="A7",
    )


def start_agent(
    config: dict[str, object],
    recognizer: Recognizer,
    pins: MockFactory,
    reservations: list[Reservation],
) -> Agent:
    agent = build_agent(parse_config(config), recognizer=recognizer, pin_factory=pins)
    agent.store.upsert_reservations(reservations)
    return agent.start()


def frames_seen(agent: Agent) -> int:
    return agent.lanes["entry-1"].status.frames


def test_booked_plate_pulses_the_pin_and_journals_one_entry(
    tmp_path: Path, dataset_dir: Path, recognizer: Recognizer, pins: MockFactory
) -> None:
    frames = photo_folder(tmp_path, dataset_dir, BOOKED_PHOTO)
    agent = start_agent(agent_config(tmp_path, frames), recognizer, pins, [booking("K179658")])
    pin = pins.pin(BARRIER_PIN)
    try:
        events = wait_for(lambda: agent.store.events(limit=10), timeout=20, what="an event")
        # the pulse reverts inside the driver: wait until the pin is low again
        wait_for(lambda: len(pin.states) >= 3 and not pin.state, timeout=5, what="pin revert")
        seen = frames_seen(agent)
        wait_for(lambda: frames_seen(agent) >= seen + 5, timeout=20, what="more frames")
        events = agent.store.events(limit=10)
    finally:
        agent.stop()
    assert [e.kind for e in events] == [EventKind.ENTRY], "the same car must not enter twice"
    event = events[0]
    assert event.plate == "K179658"
    assert event.reason == "reservation_valid"
    assert event.reservation_id == "bk_test1"
    assert event.visit_id and len(event.visit_id) >= 16
    assert event.confidence is not None and event.confidence >= 0.8
    # pin history: low at construction, high for the pulse, low again. MockPin timestamps are
    # the time since the previous change, so the last one is how long the pin stayed high.
    states = [(s.timestamp, s.state) for s in pin.states]
    assert [state for _, state in states] == [False, True, False]
    pulse = states[2][0]
    assert PULSE_S * 0.9 <= pulse <= PULSE_S + 0.25, pulse


def test_unknown_plate_is_denied_without_a_pulse(
    tmp_path: Path, dataset_dir: Path, recognizer: Recognizer, pins: MockFactory
) -> None:
    frames = photo_folder(tmp_path, dataset_dir, UNKNOWN_PHOTO)
    agent = start_agent(agent_config(tmp_path, frames), recognizer, pins, [booking("K179658")])
    try:
        events = wait_for(lambda: agent.store.events(limit=10), timeout=20, what="an event")
        seen = frames_seen(agent)
        wait_for(lambda: frames_seen(agent) >= seen + 5, timeout=20, what="more frames")
        events = agent.store.events(limit=10)
    finally:
        agent.stop()
    assert [(e.kind, e.reason) for e in events] == [(EventKind.DENIED, "no_reservation")]
    assert events[0].read_text == "CCLVN3"
    assert [s.state for s in pins.pin(BARRIER_PIN).states] == [False]


def test_sigkill_right_after_the_pulse_loses_no_journaled_event(
    tmp_path: Path, dataset_dir: Path, models_dir: Path
) -> None:
    frames = photo_folder(tmp_path, dataset_dir, BOOKED_PHOTO)
    config = agent_config(tmp_path, frames)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = Store(data_dir / "agent.sqlite3")
    store.upsert_reservation(booking("K179658"))
    store.close()
    config_path = tmp_path / "agent.toml"
    config_path.write_text(_toml(config))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PARKGATE_MODELS_DIR": str(models_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gate_agent.cli", "run", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    pulsed = threading.Event()
    output: list[str] = []

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if ": open (reservation_valid)" in line:
                proc.send_signal(signal.SIGKILL)  # right after the pulse was commanded
                pulsed.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert pulsed.wait(60), "agent never opened:\n" + "".join(output)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reopened = Store(data_dir / "agent.sqlite3")
    try:
        events = reopened.events(limit=10)
        assert [(e.kind, e.plate) for e in events] == [(EventKind.ENTRY, "K179658")]
        assert [e.event_id for e in reopened.unsent_events()] == [events[0].event_id]
        assert [p.plate for p in reopened.inside()] == ["K179658"]
    finally:
        reopened.close()


def _toml(config: dict[str, object]) -> str:
    lane = config["lanes"][0]  # type: ignore[index]
    return f"""
[lot]
id = "lot-1"
data_dir = "{config["lot"]["data_dir"]}"  # type: ignore[index]

[passes]
budget_seconds = 0.8
gap_seconds = 30

[web]
enabled = false

[[lanes]]
id = "entry-1"
direction = "entry"
camera = {{ kind = "replay", path = "{lane["camera"]["path"]}", fps = 10 }}
barrier = {{ kind = "gpio", pin = {BARRIER_PIN}, pulse_seconds = {PULSE_S}, mock = true }}
""".replace("  # type: ignore[index]", "")


@pytest.mark.parametrize("keep_images", [False, True])
def test_evidence_images_only_when_configured(
    tmp_path: Path,
    dataset_dir: Path,
    recognizer: Recognizer,
    pins: MockFactory,
    keep_images: bool,
) -> None:
    frames = photo_folder(tmp_path, dataset_dir, BOOKED_PHOTO)
    config = agent_config(tmp_path, frames)
    config["privacy"] = {"keep_images": keep_images, "image_dir": str(tmp_path / "kept")}
    agent = build_agent(parse_config(config), recognizer=recognizer, pin_factory=pins)
    agent.store.upsert_reservation(booking("K179658"))
    try:
        outcome = agent.lanes["entry-1"].evaluate_image(cv2.imread(str(dataset_dir / BOOKED_PHOTO)))
    finally:
        agent.stop()
    event = agent_events(tmp_path)[0]
    assert outcome.decision.open and event.event_id == outcome.event_id
    kept = sorted((tmp_path / "kept").rglob("*.jpg")) if (tmp_path / "kept").exists() else []
    if keep_images:
        assert event.image_path == f"images/{event.event_id}.jpg"
        assert kept == [tmp_path / "kept" / event.image_path]
        assert cv2.imread(str(kept[0])) is not None
    else:
        assert event.image_path is None and kept == []
        assert not list((tmp_path / "data").rglob("*.jpg"))


def agent_events(tmp_path: Path) -> list:  # type: ignore[type-arg]
    store = Store(tmp_path / "data" / "agent.sqlite3")
    try:
        return store.events(limit=10)
    finally:
        store.close()


def test_presence_sensor_starts_a_pass_and_holds_the_barrier_open(
    tmp_path: Path, recognizer: Recognizer, pins: MockFactory
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "empty-lane.png"), np.zeros((240, 320, 3), dtype=np.uint8))
    config = agent_config(tmp_path, frames)
    config["passes"] = {"budget_seconds": 0.5, "gap_seconds": 30}
    lane_config = config["lanes"][0]  # type: ignore[index]
    lane_config["presence"] = {"pin": 27, "active_high": True, "mock": True}
    agent = build_agent(parse_config(config), recognizer=recognizer, pin_factory=pins)
    agent.start()
    loop, relay = pins.pin(27), pins.pin(BARRIER_PIN)
    try:
        loop.drive_high()  # a car rolls onto the induction loop; the camera reads no plate
        events = wait_for(lambda: agent.store.events(limit=5), timeout=10, what="a decision")
        assert [(e.kind, e.reason) for e in events] == [(EventKind.DENIED, "no_plate")]
        agent.lanes["entry-1"].manual_open(actor="olga", reason="driver lost the booking mail")
        wait_for(lambda: relay.state, timeout=2, what="the pulse")
        held_from = time.monotonic()
        # while the car is on the loop the pulse is re-armed: still open after 3 pulse lengths
        wait_for(lambda: time.monotonic() - held_from > 3 * PULSE_S, timeout=5, what="time")
        assert relay.state is True
        loop.drive_low()  # the car has passed: the last pulse runs out in the driver
        wait_for(lambda: not relay.state, timeout=3 * PULSE_S + 1, what="the revert")
    finally:
        agent.stop()
    assert [s.state for s in relay.states][:2] == [False, True]
    assert [s.state for s in relay.states].count(True) == 1  # one continuous opening
