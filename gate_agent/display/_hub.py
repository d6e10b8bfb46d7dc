"""``DisplayHub``: turns lane outcomes into screens, off the lanes' threads.

A lane calls :meth:`DisplayHub.notify` (a ``Lane`` listener) on its own thread right after it has
commanded the barrier; that call only puts the outcome on a queue. The hub's thread takes it from
there: looks up the booking's space label and start time, picks the language, builds the screen,
puts it on the lane's :class:`LaneBoard` for the live connections, and sets the lane light. Every
tick it also clears a decision older than ``display.hold_seconds`` back to idle (the screen never
keeps a driver's plate for the next car), shows "reading" while a pass is being read, and adds the
offline notice while the cloud is out of reach.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo

from gate_agent.config import AgentConfig
from gate_agent.display._board import LaneBoard
from gate_agent.display._catalogue import Catalogue, catalogue
from gate_agent.display._pay import pay_url
from gate_agent.display._screens import (
    OWING,
    PassView,
    Screen,
    ScreenState,
    help_screen,
    idle_screen,
    reading_screen,
    screen_for_pass,
)
from gate_agent.domain import Direction
from gate_agent.lane import Lane, LaneOutcome
from gate_agent.store import Store
from hardware.lane_signals import LaneLight, LightColour

__all__ = ["DisplayHub"]

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
HELP_HOLD_FACTOR = 3  # "help is on the way" stays up this many times as long as a decision
LIGHTS: dict[ScreenState, LightColour] = {
    ScreenState.OPEN: "green",
    ScreenState.DENIED: "red",
    ScreenState.OWES: "red",
    ScreenState.READING: "amber",
}


@dataclass(frozen=True, slots=True)
class _HelpPressed:
    lane_id: str


@dataclass(frozen=True, slots=True)
class _Held:
    screen: Screen
    until: float


class DisplayHub:
    """The lane displays and lights of one lot."""

    def __init__(
        self,
        config: AgentConfig,
        lanes: Mapping[str, Lane],
        store: Store,
        *,
        online: Callable[[], bool | None] = lambda: None,
        lights: Mapping[str, LaneLight] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tz: tzinfo | None = None,
    ) -> None:
        self.config = config
        self.lanes = lanes
        self.store = store
        self.online = online  # None: the lot does not sync (no notice); False: cut off
        self.lights = dict(lights or {})
        self._clock = clock
        self._wallclock = wallclock
        self._tz = tz  # None: the Pi's local time zone
        self._inbox: queue.SimpleQueue[LaneOutcome | _HelpPressed] = queue.SimpleQueue()
        self._held: dict[str, _Held] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        idle = idle_screen(self.catalogue(), config.lot.id)
        max_watchers = config.display.max_screens_per_lane
        self.boards = {lane_id: LaneBoard(lane_id, idle, max_watchers) for lane_id in lanes}

    # -- fed from other threads (only enqueue) ------------------------------------------------

    def notify(self, outcome: LaneOutcome) -> None:
        """The ``Lane`` listener: enqueue and return (never blocks the lane's thread)."""
        self._inbox.put(outcome)

    def help_requested(self, lane_id: str) -> None:
        self._inbox.put(_HelpPressed(lane_id))

    # -- the hub's thread ---------------------------------------------------------------------

    def start(self) -> DisplayHub:
        self._thread = threading.Thread(target=self._run, name="display", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and end every live connection; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for board in self.boards.values():
            board.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._inbox.get(timeout=TICK_SECONDS)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self.take(item)
                self.refresh()
            except Exception:  # the screens are best effort; the gate never depends on them
                log.exception("lane display update failed")

    def take(self, item: LaneOutcome | _HelpPressed) -> None:
        """Put an outcome (or a help press) on its lane's screen (the thread's step)."""
        if item.lane_id not in self.boards:
            return
        if isinstance(item, _HelpPressed):
            hold = self.config.display.hold_seconds * HELP_HOLD_FACTOR
            screen = help_screen(self.catalogue())
        else:
            hold = self.config.display.hold_seconds
            screen = self._screen_for(item)
        self._held[item.lane_id] = _Held(screen, self._clock() + hold)

    def refresh(self) -> None:
        """Show each lane's current screen: a held decision, reading, or idle."""
        now = self._clock()
        offline = self.catalogue().text("offline") if self.online() is False else ""
        for lane_id, board in self.boards.items():
            screen = self._base_screen(lane_id, now)
            board.show(replace(screen, offline=offline))
            light = self.lights.get(lane_id)
            if light is not None:
                colour = LIGHTS.get(screen.state, "off")
                if light.colour != colour:
                    light.show(colour)

    def _base_screen(self, lane_id: str, now: float) -> Screen:
        held = self._held.get(lane_id)
        if held is not None and now < held.until:
            return held.screen
        self._held.pop(lane_id, None)  # cleared: the next car never sees this driver's plate
        cat = self.catalogue()
        current = self.lanes[lane_id].tracker.current  # read-only peek at the lane's pass
        if current is not None and not current.decided and current.candidates:
            return reading_screen(cat)
        return idle_screen(cat, self.config.lot.id, self._free_for_visitors(lane_id))

    def _free_for_visitors(self, lane_id: str) -> int | None:
        """The drive-up spaces free now, on an entry lane of a lot that admits drive-ups (the
        count the lane's own decisions use); None where the screen has nothing to say."""
        lane = self.lanes[lane_id]
        if lane.direction is not Direction.ENTRY:
            return None
        rules = lane.current_rules()
        if not rules.drive_up:
            return None
        return max(0, rules.drive_up_spaces - lane.lot_state(rules).drive_up_inside)

    # -- what a screen says -------------------------------------------------------------------

    def catalogue(self) -> Catalogue:
        """The configured language, else the lot policy's, else English."""
        language = self.config.display.language
        if language is None:
            held = self.store.policy
            language = None if held is None else held.policy.language
        return catalogue(language)

    def _screen_for(self, outcome: LaneOutcome) -> Screen:
        decision = outcome.decision
        booking = (
            self.store.get_reservation(decision.reservation_id) if decision.reservation_id else None
        )
        view = PassView(
            reason=str(decision.reason),
            open=decision.open,
            direction=self.lanes[outcome.lane_id].direction,
            plate=decision.plate,
            amount_owed_cents=decision.amount_owed_cents,
            currency=decision.currency,
            space_label=None if booking is None else booking.space_label,
            starts_at=None if booking is None else booking.starts_at,
        )
        link = pay_url(self.config, decision.plate) if view.reason in OWING else None
        return screen_for_pass(
            view, self.catalogue(), pay_url=link, now=self._wallclock(), tz=self._tz
        )
