"""One lane's loop: frame → plates → pass → decision → journal → barrier.

The journal is committed (``synchronous=FULL``) *before* the barrier is commanded open: an opening
is never unrecorded, even when the power fails between the two. The price is one fsync on the
frame→command path, which ``make bench`` measures. If the pulse then fails, a ``barrier_fault``
event follows the journaled decision, so the record says what really happened.

Several lanes share one recognizer (it serialises calls itself); each lane owns its pass tracker.

A car held at an exit for ``payment_due`` is remembered (its stay and its voted reads) for
``hold_window_s``: when the stay is paid (:meth:`Lane.stay_paid`, called from the sync feed) and
the car is still there (no pass of another car began since; the presence sensor, when the lane has
one, still reports a vehicle), the lane decides again from those reads, without a new camera
read, and opens if the stay is paid.
The held denial stays journaled; the exit is journaled beside it, on the same visit.

Booking access codes (:mod:`gate_agent.codes`): on a frame whose plates did not open the barrier,
the lane looks for an access-code QR code (:class:`~gate_agent.code_reader.CodeReader`, at most
every ``interval_s``); a code found decides the pass by :meth:`Lane.open_by_code`, the same path
the code-entry page takes (journaled, then pulsed). The same code seen again while it stays in
view (``gap_s`` of the pass tracker) is not decided twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from gate_agent.code_reader import CodeReader
from gate_agent.codes import code_decision, suffix_matches
from gate_agent.decision import decide
from gate_agent.domain import (
    Decision,
    Direction,
    EventKind,
    JournalEvent,
    LotRules,
    LotState,
    PlateRead,
    Reason,
    StayKind,
)
from gate_agent.passes import Pass, PassTracker, VotedPlate, new_visit_id
from gate_agent.recognition import Recognizer
from gate_agent.rules import rules_in_force
from gate_agent.store import PolicyInForce, PresenceChange, Store
from hardware.barrier import Barrier
from hardware.camera import Frame, FrameSource
from hardware.errors import HardwareError
from parkgate_protocol import AccessCodeError, check_access_code

__all__ = ["Lane", "LaneOutcome"]

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LaneOutcome:
    """What a lane decided for one pass, and what it did about it."""

    lane_id: str
    visit_id: str
    event_id: str
    decision: Decision
    frame_seq: int
    occurred_at: datetime
    frame_to_command_ms: float | None = None  # set when the barrier was commanded open
    barrier_error: str | None = None


@dataclass
class LaneStatus:
    """Live state for the status page and metrics (written by the lane thread only)."""

    frames: int = 0
    last_frame_at: float | None = None
    last_reads: tuple[PlateRead, ...] = ()
    last_read_at: float | None = None
    last_outcome: LaneOutcome | None = None
    last_error: str | None = None
    recognition_ms: float | None = None  # the last frame's
    loop_tick_at: float | None = None  # the run loop's heartbeat (the systemd watchdog reads it)


Listener = Callable[[LaneOutcome], None]
HOLD_WINDOW_S = 120.0  # a car held for payment_due counts as still waiting this long


@dataclass(frozen=True, slots=True)
class _Held:
    """A car held at this exit for payment: its stay, its pass and the reads it was judged on."""

    stay_id: str
    visit_id: str
    candidates: tuple[VotedPlate, ...]
    at: float  # the lane clock when it was held


class Lane:
    def __init__(
        self,
        *,
        lot_id: str,
        lane_id: str,
        direction: Direction,
        recognizer: Recognizer,
        tracker: PassTracker,
        store: Store,
        barrier: Barrier,
        rules: LotRules,
        source: FrameSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = utcnow,
        listeners: Sequence[Listener] = (),
        image_dir: Path | None = None,
        vehicle_present: Callable[[], bool] | None = None,
        hold_window_s: float = HOLD_WINDOW_S,
        admissions: threading.Lock | None = None,
        code_reader: CodeReader | None = None,
    ) -> None:
        self.lot_id = lot_id
        self.lane_id = lane_id
        self.direction = direction
        self.recognizer = recognizer
        self.tracker = tracker
        self.store = store
        self.barrier = barrier
        self.rules = rules  # the local fall-backs, until the lot's cloud policy arrives
        self._from_policy: tuple[PolicyInForce, LotRules] | None = None
        self.source = source
        self._clock = clock
        self._wallclock = wallclock
        self._listeners = list(listeners)
        self.image_dir = image_dir  # evidence images are kept only when this is set (privacy)
        self.vehicle_present = vehicle_present  # the presence sensor's reading, if it has one
        self.hold_window_s = hold_window_s
        self._cloud_reachable: Callable[[], bool] = lambda: True  # no link: rules as they are
        self._held: _Held | None = None
        self.code_reader = code_reader  # None: the lane does not look for QR codes in frames
        self._code_looked_at = float("-inf")
        self._last_code: tuple[str, float] | None = None  # the code last decided, last seen at
        # entry lanes of one lot share it (the app's): two lanes never both give the last
        # drive-up space, since each decides and journals its entry while holding it
        self._admissions: AbstractContextManager[object] = (
            admissions
            if admissions is not None and direction is Direction.ENTRY
            else contextlib.nullcontext()
        )
        # the camera loop, presence sensor callbacks and operator actions share the tracker and
        # must not journal two decisions for one pass
        self._lock = threading.Lock()
        self.status = LaneStatus()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def link_cloud(self, reachable: Callable[[], bool]) -> None:
        """Tell the lane how to know whether the lot reaches the cloud now (the sync client's
        connection): an exit decides by ``offline_exit`` while it does not."""
        self._cloud_reachable = reachable

    # -- the pipeline -------------------------------------------------------------------------

    def process_frame(self, frame: Frame) -> LaneOutcome | None:
        """Run one camera frame through the lane; return the outcome if a pass was decided."""
        started = self._clock()
        reads = self.recognizer.read(frame.image)
        now = self._clock()
        self._note_frame(frame, reads, started, now)
        with self._lock:
            current = self.tracker.observe(reads, now)
            outcome = self._maybe_decide(current, frame, now)
        if outcome is not None and outcome.decision.open:
            return outcome
        return self._look_for_code(frame, current) or outcome

    def tick(self) -> LaneOutcome | None:
        """Advance time without a frame (camera stalled): a pass whose budget ran out is decided."""
        with self._lock:
            now = self._clock()
            current = self.tracker.observe((), now)
            return self._maybe_decide(current, None, now)

    def _note_frame(
        self, frame: Frame, reads: Sequence[PlateRead], started: float, now: float
    ) -> None:
        status = self.status
        status.frames += 1
        status.last_frame_at = frame.captured_at
        status.recognition_ms = (now - started) * 1000
        if reads:
            status.last_reads = tuple(reads)
            status.last_read_at = now

    def _maybe_decide(
        self, current: Pass | None, frame: Frame | None, now: float
    ) -> LaneOutcome | None:
        if current is None or current.decided:
            return None
        with self._admissions:  # the count of free drive-up spaces holds until journaled
            decision = self._decision_for(current)
            if not decision.open and not self.tracker.budget_exhausted(now):
                return None  # not sure yet: more frames may give a better read
            self.tracker.decide(current.visit_id)
            return self._note_hold(current, self._act(current.visit_id, decision, frame))

    def current_rules(self) -> LotRules:
        """The rules of the next decision: the cloud policy in force (the store keeps it in
        memory; a new one counts from the next decision, no restart), else the fall-backs."""
        held = self.store.policy
        if held is None:
            return self.rules
        cached = self._from_policy
        if cached is None or cached[0] is not held:
            cached = self._from_policy = (held, rules_in_force(held.policy, self.rules))
        return cached[1]

    def _decision_for(self, current: Pass) -> Decision:
        return self._decide(current.candidates)

    def _decide(self, candidates: Sequence[VotedPlate]) -> Decision:
        facts = [
            self.store.facts_for(c.text, c.confidence, c.char_confidences, c.char_odds)
            for c in candidates
        ]
        rules = self.current_rules()
        lot = self.lot_state(rules)
        return decide(self.direction, facts, self._wallclock(), rules, self.lane_id, lot)

    def lot_state(self, rules: LotRules | None = None) -> LotState:
        """The lot beside the cache: drive-up cars inside (an entry admitting drive-ups asks the
        store, one count) and whether the cloud is in reach."""
        rules = self.current_rules() if rules is None else rules
        drive_ups = 0
        if self.direction is Direction.ENTRY and rules.drive_up:
            drive_ups = self.store.inside_counts()[1]
        return LotState(drive_up_inside=drive_ups, cloud_reachable=self._cloud_reachable())

    def _note_hold(self, current: Pass, outcome: LaneOutcome) -> LaneOutcome:
        """Remember a car held for payment (the lane's last decision), forget it otherwise."""
        decision = outcome.decision
        if decision.reason is Reason.PAYMENT_DUE and decision.stay_id is not None:
            self._held = _Held(
                decision.stay_id, outcome.visit_id, current.candidates, self._clock()
            )
        else:
            self._held = None
        return outcome

    def stay_paid(self, stay_id: str) -> LaneOutcome | None:
        """The stay ``stay_id`` was paid: if its car is the one held here, still in the hold
        window and (with a presence sensor) still there, decide again from its reads and act.
        Returns the outcome, or None when no held car of that stay is waiting."""
        with self._lock:
            held = self._held
            if held is None or held.stay_id != stay_id:
                return None
            current = self.tracker.current
            another_car = current is not None and current.visit_id != held.visit_id
            if another_car or self._clock() - held.at > self.hold_window_s:
                self._held = None  # a pass of another car began since, or it waited too long
                return None
            if self.vehicle_present is not None and not self.vehicle_present():
                return None
            decision = self._decide(held.candidates)
            if not decision.open:
                log.info(
                    "lane %s visit %s: paid, still %s",
                    self.lane_id,
                    held.visit_id,
                    decision.reason.value,
                )
                return None
            self._held = None
            return self._act(held.visit_id, decision, None)

    def _act(self, visit_id: str, decision: Decision, frame: Frame | None) -> LaneOutcome:
        event = JournalEvent.for_decision(
            decision,
            lot_id=self.lot_id,
            lane_id=self.lane_id,
            direction=self.direction,
            visit_id=visit_id,
            occurred_at=self._wallclock(),
        )
        if self.image_dir is not None and frame is not None:
            event = dataclasses.replace(event, image_path=f"images/{event.event_id}.jpg")
        presence: PresenceChange = "none"
        if decision.open:
            presence = "enter" if self.direction is Direction.ENTRY else "leave"
        kind = decision.stay_kind or StayKind.BOOKING
        # FULL commit, then pulse
        event_id = self.store.record_pass(event, presence=presence, stay_kind=kind)
        latency_ms: float | None = None
        barrier_error: str | None = None
        if decision.open:
            barrier_error = self._pulse(visit_id)
            if frame is not None and barrier_error is None:
                latency_ms = (self._clock() - frame.captured_at) * 1000
        if event.image_path and frame is not None:
            self._keep_image(frame, event.image_path)  # after the pulse: off the hot path
        return self._finish(
            LaneOutcome(
                lane_id=self.lane_id,
                visit_id=visit_id,
                event_id=event_id,
                decision=decision,
                frame_seq=frame.seq if frame is not None else -1,
                occurred_at=event.occurred_at or self._wallclock(),
                frame_to_command_ms=latency_ms,
                barrier_error=barrier_error,
            )
        )

    def _finish(self, outcome: LaneOutcome) -> LaneOutcome:
        decision = outcome.decision
        log.info(
            "lane %s visit %s: %s (%s)",
            self.lane_id,
            outcome.visit_id,
            "open" if decision.open else "denied",
            decision.reason.value,
        )
        log.debug("lane %s visit %s plate %s", self.lane_id, outcome.visit_id, decision.plate)
        self.status.last_outcome = outcome
        for listener in self._listeners:
            listener(outcome)
        return outcome

    def _keep_image(self, frame: Frame, relative: str) -> None:
        assert self.image_dir is not None
        path = self.image_dir / relative
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        try:
            if not ok:
                raise OSError("JPEG encoding failed")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpeg.tobytes())
        except OSError as exc:  # evidence is best effort; the journaled event stands
            log.warning("lane %s: could not keep evidence image %s: %s", self.lane_id, path, exc)

    def _pulse(self, visit_id: str) -> str | None:
        try:
            self.barrier.pulse_open()
        except HardwareError as exc:
            log.error("lane %s: barrier pulse failed: %s", self.lane_id, exc)
            fault = JournalEvent(
                lot_id=self.lot_id,
                kind=EventKind.BARRIER_FAULT,
                lane_id=self.lane_id,
                direction=self.direction,
                visit_id=visit_id,
                occurred_at=self._wallclock(),
                detail={"error": str(exc)},
            )
            self.store.record_pass(fault)
            self.status.last_error = str(exc)
            return str(exc)
        return None

    # -- booking access codes -----------------------------------------------------------------

    def _opened_for(self, current: Pass | None) -> bool:
        """The lane's last outcome opened for this pass's car."""
        last = self.status.last_outcome
        if current is None or last is None:
            return False
        return last.visit_id == current.visit_id and last.decision.open

    def _look_for_code(self, frame: Frame, current: Pass | None) -> LaneOutcome | None:
        """An access code in a frame whose plates did not open: decide the pass by it."""
        reader = self.code_reader
        now = self._clock()
        if reader is None or now - self._code_looked_at < reader.interval_s:
            return None
        if self._opened_for(current):
            return None  # this car is let in (or out) already
        self._code_looked_at = now
        text = reader.read(frame.image)
        if text is None:
            return None
        seen_before = self._last_code is not None and self._last_code[0] == text
        recently = self._last_code is not None and now - self._last_code[1] < self.tracker.gap_s
        self._last_code = (text, now)
        if seen_before and recently:
            return None  # still held up to the camera: decided once
        read_text = current.candidates[0].text if current and current.candidates else None
        return self.open_by_code(text, read_text=read_text, frame=frame)

    def open_by_code(
        self,
        code: str,
        *,
        read_text: str | None = None,
        frame: Frame | None = None,
        plate_suffix: str | None = None,
    ) -> LaneOutcome | None:
        """Decide by a booking's access code (a QR read, or typed on the code page) and act on
        it like a plate decision: journaled (reason ``booking_code`` or the code's refusal),
        then pulsed if it opens.

        With ``plate_suffix`` (the code page), a verified code counts only when the booking's
        plate ends with it; otherwise None is returned and nothing is journaled (a typed guess
        must not learn which bookings exist). A refused code is journaled from the camera, not
        from the page (None)."""
        now = self._wallclock()
        try:
            verified: str | AccessCodeError = check_access_code(
                code, lot_id=self.lot_id, keys=self.store.access_keys, now=now
            ).booking_id
        except AccessCodeError as exc:
            if plate_suffix is not None:
                log.info("lane %s: code page: %s", self.lane_id, exc.reason)
                return None
            verified = exc
        return self._decide_booking(verified, read_text, frame, plate_suffix)

    def open_by_booking(self, booking_id: str, plate_suffix: str) -> LaneOutcome | None:
        """The code page without a code: the booking id and its plate's last characters.
        None (nothing journaled) unless the cache holds that booking with that plate ending."""
        return self._decide_booking(booking_id, None, None, plate_suffix)

    def _decide_booking(
        self,
        verified: str | AccessCodeError,
        read_text: str | None,
        frame: Frame | None,
        plate_suffix: str | None,
    ) -> LaneOutcome | None:
        reservation = None
        if isinstance(verified, str):
            reservation = self.store.get_reservation(verified)
            if plate_suffix is not None and (
                reservation is None or not suffix_matches(reservation.plate, plate_suffix)
            ):
                log.info("lane %s: code page: no booking matches", self.lane_id)
                return None
        with self._lock, self._admissions:
            facts = None
            if reservation is not None:
                facts = self.store.facts_for(reservation.plate, 1.0)
            rules = self.current_rules()
            decision = code_decision(
                self.direction,
                verified,
                reservation,
                facts,
                self._wallclock(),
                rules,
                lane_id=self.lane_id,
                lot=self.lot_state(rules),
                read_text=read_text,
            )
            current = self.tracker.current
            if current is not None and not current.decided:
                self.tracker.decide(current.visit_id)  # the code decides the car's pass
                visit_id = current.visit_id
            else:
                visit_id = new_visit_id()
            return self._act(visit_id, decision, frame)

    # -- operator actions ---------------------------------------------------------------------

    def manual_open(self, *, actor: str, reason: str) -> LaneOutcome:
        """An operator opens the lane: audited with who/why, journaled, then pulsed."""
        reason = reason.strip()
        if not reason:
            raise ValueError("a reason is required for a manual open")
        with self._lock:
            visit_id = new_visit_id()
            self._held = None  # whoever was held is let out by hand
            self.store.audit(actor, "manual_open", reason, lane_id=self.lane_id)
            decision = Decision(open=True, reason=Reason.MANUAL_OPEN, detail=reason)
            event = JournalEvent(
                lot_id=self.lot_id,
                kind=EventKind.MANUAL_OPEN,
                lane_id=self.lane_id,
                direction=self.direction,
                visit_id=visit_id,
                reason=Reason.MANUAL_OPEN.value,
                occurred_at=self._wallclock(),
                detail={"actor": actor, "reason": reason},
            )
            event_id = self.store.record_pass(event)
            error = self._pulse(visit_id)
            return self._finish(
                LaneOutcome(
                    self.lane_id,
                    visit_id,
                    event_id,
                    decision,
                    -1,
                    event.occurred_at or self._wallclock(),
                    None,
                    error,
                )
            )

    def presence_arrived(self) -> None:
        """A presence sensor saw a vehicle: start a pass (the time budget runs from now)."""
        with self._lock:
            self.tracker.start(self._clock())

    def evaluate_image(self, image: np.ndarray, *, act: bool = True) -> LaneOutcome:
        """Commissioning: run a photo through the full pipeline as a camera frame, decide now.

        A single photo is all the evidence there will be, so the pass is decided at once. It is a
        pass of its own, never merged with what the lane's camera is watching. With ``act=False``
        nothing is journaled and the barrier does not move (a preview).
        """
        started = self._clock()
        frame = Frame(image=image, seq=-1, captured_at=started, wall_time=time.time())
        reads = self.recognizer.read(image)
        now = self._clock()
        self._note_frame(frame, reads, started, now)
        current = Pass(visit_id=new_visit_id(), started_at=now, budget_s=0.0)
        current.add_frame(reads, now)
        with self._lock, self._admissions:
            decision = self._decision_for(current)
            if not act:
                return LaneOutcome(
                    self.lane_id, current.visit_id, "", decision, -1, self._wallclock()
                )
            current.decided = True
            return self._note_hold(current, self._act(current.visit_id, decision, frame))

    # -- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event, poll_seconds: float = 0.25) -> None:
        """Process the newest camera frame until ``stop`` is set."""
        if self.source is None:
            raise RuntimeError(f"lane {self.lane_id} has no frame source")
        last_seq = -1
        while not stop.is_set():
            self.status.loop_tick_at = self._clock()
            frame = self.source.latest(newer_than=last_seq, timeout=poll_seconds)
            if frame is None:
                self.tick()
                continue
            last_seq = frame.seq
            self.process_frame(frame)
