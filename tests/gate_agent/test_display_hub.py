"""The display hub over a real agent (store, lanes, mock GPIO): screens from outcomes, cleared to
idle, lights mirroring the decision, help presses journaled and answered, and the web routes
(no login, 404 for unknown lanes, streams capped per lane)."""

from __future__ import annotations

import asyncio
import dataclasses
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from devservices import wait_for
from gate_agent.app import Agent, build_agent
from gate_agent.config import parse_config
from gate_agent.display import DisplayHub, ScreenState, TooManyWatchers
from gate_agent.domain import (
    Decision,
    Direction,
    EventKind,
    JournalEvent,
    PlateRead,
    Reason,
    Reservation,
    ReservationStatus,
    StayKind,
)
from gate_agent.lane import LaneOutcome
from gate_agent.lane_health import lane_health
from gate_agent.recognition import Recognizer
from gate_agent.web import WebContext, create_web_app
from gate_agent.web.pages_lanes import panel_html
from gate_agent.web.status import lane_alarms, lane_snapshot
from hardware.lane_signals import LaneLight
from parkgate_protocol import LotPolicy
from tests.gate_agent.test_web_api import BOOKED_PLATE, camera_folder

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LANE = "entry-1"
HELP_PIN, RED_PIN, GREEN_PIN = 22, 23, 24
HOLD_S = 8.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config_dict(tmp_path: Path, frames: Path, **display: Any) -> dict[str, Any]:
    return {
        "lot": {"id": "lot-display", "data_dir": str(tmp_path / "data")},
        "web": {"session_secret": "s" * 32},
        "display": {"hold_seconds": HOLD_S, "max_screens_per_lane": 2, **display},
        "lanes": [
            {
                "id": LANE,
                "direction": "entry",
                "camera": {"kind": "replay", "path": str(frames), "fps": 2},
                "barrier": {"kind": "gpio", "pin": 17, "pulse_seconds": 0.2, "mock": True},
                "help_button": {"pin": HELP_PIN, "mock": True},
                "light": {"red": RED_PIN, "green": GREEN_PIN, "mock": True},
            }
        ],
    }


@pytest.fixture
def agent(
    tmp_path: Path, dataset_dir: Path, recognizer: Recognizer, pins: MockFactory
) -> Iterator[Agent]:
    config = parse_config(config_dict(tmp_path, camera_folder(tmp_path, dataset_dir)))
    agent = build_agent(config, recognizer=recognizer, pin_factory=pins)
    yield agent
    agent.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(agent: Agent, pins: MockFactory, clock: Clock) -> DisplayHub:
    """A hub stepped by hand (no thread) on the agent's lanes, with its own light on spare pins."""
    light = LaneLight(red=5, green=6, pin_factory=pins)
    return DisplayHub(agent.config, agent.lanes, agent.store, lights={LANE: light}, clock=clock)


def outcome(reason: Reason, *, open_: bool, plate: str | None = None, **decision: Any) -> Any:
    return LaneOutcome(
        LANE,
        "visit-1",
        "event-1",
        Decision(open=open_, reason=reason, plate=plate, **decision),
        -1,
        datetime.now(UTC),
    )


def booking(**changes: Any) -> Reservation:
    now = datetime.now(UTC)
    base = Reservation(
        "bk1",
        BOOKED_PLATE,
        now - timedelta(minutes=5),
        now + timedelta(hours=2),
        ReservationStatus.CONFIRMED,
        space_label="B12",
    )
    return dataclasses.replace(base, **changes)


def lit(pins: MockFactory, pin: int) -> bool:
    return bool(pins.pin(pin).state)


def test_a_decision_shows_for_a_while_then_the_screen_forgets_it(
    hub: DisplayHub, agent: Agent, pins: MockFactory, clock: Clock
) -> None:
    agent.store.upsert_reservation(booking())
    board = hub.boards[LANE]
    hub.refresh()
    assert board.current()[0].headline == "Welcome to lot-display"

    hub.notify(
        outcome(Reason.RESERVATION_VALID, open_=True, plate=BOOKED_PLATE, reservation_id="bk1")
    )
    hub.refresh()
    assert board.current()[0].state is ScreenState.IDLE  # notify only enqueued
    hub.take(hub._inbox.get_nowait())
    hub.refresh()
    screen = board.current()[0]
    assert (screen.state, screen.headline, screen.detail) == (
        ScreenState.OPEN,
        f"Welcome {BOOKED_PLATE}",
        "Your space: B12",
    )
    assert lit(pins, 6) and not lit(pins, 5)

    clock.now += HOLD_S + 0.1
    hub.refresh()
    screen = board.current()[0]
    assert screen.state is ScreenState.IDLE and BOOKED_PLATE not in str(screen.to_dict())
    assert not lit(pins, 6) and not lit(pins, 5)


def test_a_denial_lights_red_and_a_later_start_says_when(
    hub: DisplayHub, agent: Agent, pins: MockFactory
) -> None:
    starts = datetime.now(UTC) + timedelta(hours=3)
    agent.store.upsert_reservation(booking(starts_at=starts, ends_at=starts + timedelta(hours=1)))
    hub.take(outcome(Reason.TOO_EARLY, open_=False, plate=BOOKED_PLATE, reservation_id="bk1"))
    hub.refresh()
    screen = hub.boards[LANE].current()[0]
    assert screen.state is ScreenState.DENIED
    assert screen.headline.startswith("Your booking starts at ")
    assert screen.headline[-5:] in (starts.astimezone().strftime("%H:%M"),)
    assert lit(pins, 5) and not lit(pins, 6)


def test_the_idle_entry_screen_counts_the_free_visitor_spaces(
    agent: Agent, hub: DisplayHub
) -> None:
    hub.refresh()
    assert hub.boards[LANE].current()[0].detail == ""  # no drive-ups: nothing to count
    policy = {"version": 1, "drive_up": True, "drive_up_spaces": 3}
    agent.store.apply_policy(LotPolicy.model_validate(policy), policy)
    hub.refresh()
    assert hub.boards[LANE].current()[0].detail == "3 free spaces"
    entry = JournalEvent(
        lot_id="lot-display",
        kind=EventKind.ENTRY,
        lane_id=LANE,
        direction=Direction.ENTRY,
        visit_id="v1",
        stay_id="v1",
        plate="VISIT1",
        occurred_at=datetime.now(UTC),
    )
    agent.store.record_pass(entry, presence="enter", stay_kind=StayKind.DRIVE_UP)
    hub.refresh()
    assert hub.boards[LANE].current()[0].detail == "2 free spaces"


def test_the_language_follows_the_policy_unless_the_config_names_one(
    hub: DisplayHub, agent: Agent, tmp_path: Path, dataset_dir: Path
) -> None:
    agent.store.apply_policy(LotPolicy(version=1, language="de"), {"version": 1})
    hub.refresh()
    assert hub.boards[LANE].current()[0].headline == "Willkommen bei lot-display"
    config = parse_config(config_dict(tmp_path, tmp_path, language="fr"))
    french = DisplayHub(config, agent.lanes, agent.store)
    french.refresh()
    assert french.boards[LANE].current()[0].headline == "Bienvenue à lot-display"


def test_offline_notice_while_the_cloud_is_out_of_reach(hub: DisplayHub) -> None:
    hub.online = lambda: False
    hub.refresh()
    assert hub.boards[LANE].current()[0].offline == "Offline: the gate still works"
    hub.online = lambda: True
    hub.refresh()
    assert hub.boards[LANE].current()[0].offline == ""


def test_live_connections_are_capped_per_lane(hub: DisplayHub) -> None:
    board = hub.boards[LANE]
    loop = asyncio.new_event_loop()
    try:
        first, second = board.watch(loop), board.watch(loop)
        with pytest.raises(TooManyWatchers):
            board.watch(loop)
        first.close()
        first.close()  # twice is fine
        board.watch(loop).close()
        second.close()
        assert board.watchers == 0
    finally:
        loop.close()


def test_help_button_is_journaled_shown_alarmed_and_answered_by_a_manual_open(
    agent: Agent, pins: MockFactory
) -> None:
    assert agent.display is not None and agent.help_desk is not None
    agent.display.start()
    pins.pin(HELP_PIN).drive_low()  # pressed (pull-up: a contact to ground)
    pins.pin(HELP_PIN).drive_high()
    wait_for(lambda: agent.help_desk and agent.help_desk.pending(LANE), timeout=5, what="help")
    board = agent.display.boards[LANE]
    wait_for(lambda: board.current()[0].state is ScreenState.HELP, timeout=5, what="help screen")
    kinds = [e.kind for e in agent.store.events(10)]
    assert kinds == [EventKind.HELP_REQUESTED]
    (health,) = lane_health(agent.lanes.values(), help_desk=agent.help_desk)
    assert health.help_requested_at is not None

    ctx = WebContext.from_agent(agent, agent.config.web)
    alarms = lane_alarms(ctx, agent.lanes[LANE], started_at=ctx.monotonic())
    assert [a for a in alarms if a.startswith("HELP requested by a driver at ")], alarms
    assert "class=help" in panel_html({**lane_snapshot(ctx, agent.lanes[LANE], ctx.monotonic())})

    agent.lanes[LANE].manual_open(actor="alice", reason="driver at the help button")
    assert agent.help_desk.pending(LANE) is None
    (health,) = lane_health(agent.lanes.values(), help_desk=agent.help_desk)
    assert health.help_requested_at is None
    wait_for(lambda: lit(pins, GREEN_PIN), timeout=5, what="the lane light to go green")


def test_display_routes_need_no_login_and_know_only_real_lanes(agent: Agent) -> None:
    app = create_web_app(agent, agent.config.web)
    with TestClient(app, follow_redirects=False) as client:
        page = client.get(f"/display/{LANE}")
        assert page.status_code == 200
        assert "Welcome to lot-display" in page.text
        assert 'data-events="/display/entry-1/events"' in page.text
        for path in ("/display/nope", "/display/nope/events", "/display/..%2Fadmin"):
            missing = client.get(path)
            assert missing.status_code == 404, path
        assert client.get(f"/display/{LANE}/history").status_code == 404

        assert agent.display is not None
        loop = asyncio.new_event_loop()
        try:
            held = [agent.display.boards[LANE].watch(loop) for _ in range(2)]
            refused = client.get(f"/display/{LANE}/events")
            assert refused.status_code == 429
            assert "already has 2 live displays" in refused.text
            for watcher in held:
                watcher.close()
        finally:
            loop.close()


def test_reading_while_a_pass_is_undecided(hub: DisplayHub, agent: Agent) -> None:
    tracker = agent.lanes[LANE].tracker
    tracker.observe([PlateRead(BOOKED_PLATE, 0.5, (0, 0, 10, 10))], 1.0)
    hub.refresh()
    screen = hub.boards[LANE].current()[0]
    assert screen.state is ScreenState.READING and BOOKED_PLATE not in screen.headline
    assert tracker.current is not None
    tracker.decide(tracker.current.visit_id)
    hub.refresh()
    assert hub.boards[LANE].current()[0].state is ScreenState.IDLE
