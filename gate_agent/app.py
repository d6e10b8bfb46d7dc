"""The gate agent's composition root: config in, running lanes out.

Nothing below this module reads config or the environment; everything takes its dependencies as
arguments. ``Agent`` owns the threads and closes the devices it opened (barriers revert on close).
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from gate_agent.code_reader import CodeReader
from gate_agent.config import (
    AgentConfig,
    BarrierConfig,
    CameraConfig,
    DryRunBarrierConfig,
    GpioBarrierConfig,
    HelpButtonConfig,
    LaneConfig,
    LaneLightConfig,
    OpenCVCameraConfig,
    PresenceConfig,
    SerialBarrierConfig,
)
from gate_agent.display import DisplayHub
from gate_agent.domain import Direction
from gate_agent.help_desk import HelpDesk
from gate_agent.lane import Lane
from gate_agent.lane_health import lane_health
from gate_agent.metrics import AgentMetrics
from gate_agent.passes import PassTracker
from gate_agent.recognition import Recognizer, models_dir_from_env
from gate_agent.retention import (
    EVIDENCE_SUBDIR,
    RetentionJob,
    keyed_plate_hasher,
    load_hash_key,
)
from gate_agent.store import Store
from gate_agent.sync import DEAD_LETTERS_FILE, DeadLetters, SyncClient
from gate_agent.watchdog import Watchdog
from gate_agent.web.server import WebServer, start_web_server
from hardware.barrier import Barrier, DryRunBarrier, GpioBarrier, SerialRelayBarrier
from hardware.camera import FrameSource, OpenCVCamera, ReplaySource
from hardware.lane_signals import HelpButton, LaneLight
from hardware.presence import HoldOpen, PresenceSensor

__all__ = ["Agent", "build_agent", "run_agent", "supervise"]

log = logging.getLogger(__name__)


def _mock_factory() -> object:
    from gpiozero.pins.mock import MockFactory

    return MockFactory()


def make_camera(config: CameraConfig, name: str) -> FrameSource:
    if isinstance(config, OpenCVCameraConfig):
        return OpenCVCamera(config.source, name=name)
    return ReplaySource(config.path, name=name, fps=config.fps, loop=config.loop)


def make_barrier(config: BarrierConfig, pin_factory: object | None = None) -> Barrier:
    if isinstance(config, GpioBarrierConfig):
        factory = (
            pin_factory if pin_factory is not None else (_mock_factory() if config.mock else None)
        )
        return GpioBarrier(
            config.pin,
            active_high=config.active_high,
            pulse_seconds=config.pulse_seconds,
            pin_factory=factory,
        )
    if isinstance(config, SerialBarrierConfig):
        return SerialRelayBarrier(
            config.port,
            channel=config.channel,
            baudrate=config.baudrate,
            pulse_seconds=config.pulse_seconds,
        )
    assert isinstance(config, DryRunBarrierConfig)
    return DryRunBarrier(pulse_seconds=config.pulse_seconds)


def make_presence(config: PresenceConfig, pin_factory: object | None = None) -> PresenceSensor:
    factory = pin_factory if pin_factory is not None else (_mock_factory() if config.mock else None)
    # active-high detectors drive the line; active-low ones are a contact to ground (pull-up)
    return PresenceSensor(config.pin, pull_up=not config.active_high, pin_factory=factory)


def _reading(sensor: PresenceSensor) -> Callable[[], bool]:
    return lambda: sensor.is_present


def make_help_button(config: HelpButtonConfig, pin_factory: object | None = None) -> HelpButton:
    factory = pin_factory if pin_factory is not None else (_mock_factory() if config.mock else None)
    return HelpButton(config.pin, pull_up=config.pull_up, pin_factory=factory)


def make_light(config: LaneLightConfig, pin_factory: object | None = None) -> LaneLight:
    factory = pin_factory if pin_factory is not None else (_mock_factory() if config.mock else None)
    return LaneLight(red=config.red, green=config.green, amber=config.amber, pin_factory=factory)


class Agent:
    """Every lane of one lot, running in threads until :meth:`stop`."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store,
        lanes: list[Lane],
        resources: ExitStack,
        metrics: AgentMetrics | None = None,
        *,
        display: DisplayHub | None = None,
        help_desk: HelpDesk | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.lanes = {lane.lane_id: lane for lane in lanes}
        self.metrics = metrics or AgentMetrics()  # served at /metrics by the web server
        self.metrics.watch(self)
        self.retention: RetentionJob | None = None  # the privacy purge, while running
        self._resources = resources
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.web: WebServer | None = None  # the operator UI, while running
        self.sync: SyncClient | None = None  # the cloud link, while running (sync.enabled)
        self.display = display  # the drivers' lane screens and lights (gate_agent.display)
        self.help_desk = help_desk  # drivers' help button presses until answered
        if display is not None:
            display.online = self.cloud_reachable

    def cloud_reachable(self) -> bool | None:
        """None for a lot that does not sync; else whether the cloud link is up."""
        if not self.config.sync.enabled:
            return None
        return self.sync is not None and self.sync.status.connected

    def start(self) -> Agent:
        if self.display is not None:
            self.display.start()
        for lane in self.lanes.values():
            thread = threading.Thread(
                target=self._run_lane, args=(lane,), name=f"lane-{lane.lane_id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if self.config.sync.enabled:
            self.sync = self._start_sync()
        self.retention = self._retention_job().start()
        self.web = start_web_server(self)  # None when disabled or it could not listen
        log.info("agent for lot %s running %d lane(s)", self.config.lot.id, len(self.lanes))
        return self

    def _retention_job(self) -> RetentionJob:
        privacy = self.config.privacy
        data_dir = Path(self.config.lot.data_dir)
        letters = (  # the sync client's own (it appends under their lock), else the file's
            self.sync.dead_letters
            if self.sync is not None
            else DeadLetters(data_dir / DEAD_LETTERS_FILE)
        )
        return RetentionJob(
            self.store,
            retention_days=privacy.retention_days,
            history_days=privacy.event_history_days,
            audit_days=privacy.audit_history_days,
            image_dir=privacy.image_dir or data_dir,
            evidence_dir=data_dir / EVIDENCE_SUBDIR,
            dead_letters=letters,
        )

    def _start_sync(self) -> SyncClient:
        lanes = list(self.lanes.values())
        exits = [lane for lane in lanes if lane.direction is Direction.EXIT]

        def stay_paid(stay_id: str) -> None:  # a car held at an exit for it may leave now
            for lane in exits:
                lane.stay_paid(stay_id)

        sync = SyncClient(
            self.config.sync,
            lot_id=self.config.lot.id,
            store=self.store,
            data_dir=Path(self.config.lot.data_dir),
            lanes=self.lanes,
            lane_health=lambda: lane_health(lanes, help_desk=self.help_desk),
            on_stay_paid=stay_paid,
        )
        for lane in lanes:
            lane.add_listener(sync.notify)  # a journaled pass wakes the publisher
            lane.link_cloud(lambda: sync.connected)  # offline_exit while partitioned
        return sync.start()

    def _run_lane(self, lane: Lane) -> None:
        """Run a lane loop; if it crashes, log it, show it on the status page and restart it.

        A gate must keep working: one bad frame (a decoder or ONNX error) must not shut a lane
        until someone restarts the agent. Restarts back off up to 30 s so a persistent fault
        does not spin; a *hung* loop is the watchdog's business (systemd restarts the agent).
        """
        backoff = 1.0
        while not self._stop.is_set():
            try:
                lane.run(self._stop)
                return
            except Exception as exc:
                log.exception("lane %s crashed; restarting in %.0f s", lane.lane_id, backoff)
                lane.status.last_error = f"lane loop crashed ({type(exc).__name__}); restarting"
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the main loop (:func:`supervise`) to stop the agent; safe from any thread."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self.display is not None:  # first: ends the live display streams the web serves
            self.display.stop()
        if self.web is not None:
            self.web.stop()
            self.web = None
        for thread in self._threads:
            thread.join(timeout=5)
        if self.retention is not None:
            self.retention.stop()
            self.retention = None
        if self.sync is not None:  # after the lanes (their last events), before the store
            self.sync.stop()
            self.sync = None
        self._resources.close()  # cameras stop, barriers revert, store closes
        log.info("agent stopped")


def build_agent(
    config: AgentConfig,
    *,
    recognizer: Recognizer | None = None,
    pin_factory: object | None = None,
    barrier_factory: Callable[[LaneConfig], Barrier] | None = None,
) -> Agent:
    """Wire an agent from config. Tests pass a shared recognizer or a MockFactory."""
    resources = ExitStack()
    try:
        data_dir = Path(config.lot.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        store_path = data_dir / "agent.sqlite3"
        if config.privacy.hash_plates:  # the journal keeps keyed hashes (gate_agent.retention)
            store = Store(store_path, plate_hasher=keyed_plate_hasher(load_hash_key(data_dir)))
        else:
            store = Store(store_path)
        resources.callback(store.close)
        if recognizer is None:
            rc = config.recognition
            recognizer = Recognizer.from_models(
                rc.models_dir or models_dir_from_env(),
                detector=rc.detector,
                ocr=rc.ocr,
                threads=rc.threads,
                detection_threshold=rc.detection_threshold,
                min_plate_length=rc.min_plate_length,
                plate_format=rc.plate_format,
            )
        rules = config.lot.rules.to_rules()
        privacy = config.privacy
        image_dir = (privacy.image_dir or data_dir) if privacy.keep_images else None
        metrics = AgentMetrics()
        admissions = threading.Lock()  # the entry lanes', around each drive-up count
        lanes = []
        lights: dict[str, LaneLight] = {}
        buttons: dict[str, HelpButton] = {}
        for lane_config in config.lanes:
            source = make_camera(lane_config.camera, lane_config.id)
            resources.callback(source.close)
            barrier = (
                barrier_factory(lane_config)
                if barrier_factory
                else make_barrier(lane_config.barrier, pin_factory)
            )
            resources.callback(barrier.close)
            tracker = PassTracker(
                budget_s=config.passes.budget_seconds, gap_s=config.passes.gap_seconds
            )
            sensor = None
            if lane_config.presence is not None:
                sensor = make_presence(lane_config.presence, pin_factory)
                resources.callback(sensor.close)
            lane = Lane(
                lot_id=config.lot.id,
                lane_id=lane_config.id,
                direction=lane_config.direction,
                recognizer=metrics.timed(recognizer, lane_config.id),
                tracker=tracker,
                store=store,
                barrier=barrier,
                rules=rules,
                source=source,
                image_dir=image_dir,
                vehicle_present=None if sensor is None else _reading(sensor),
                admissions=admissions,
                code_reader=CodeReader() if lane_config.read_codes else None,
                hold_window_s=lane_config.hold_window_seconds,
            )
            if sensor is not None:
                hold = HoldOpen(sensor, barrier, pulse_seconds=lane_config.barrier.pulse_seconds)
                resources.callback(hold.close)
                sensor.subscribe(arrived=lane.presence_arrived)
            if lane_config.help_button is not None:
                buttons[lane.lane_id] = make_help_button(lane_config.help_button, pin_factory)
                resources.callback(buttons[lane.lane_id].close)
            if lane_config.light is not None:
                lights[lane.lane_id] = make_light(lane_config.light, pin_factory)
                resources.callback(lights[lane.lane_id].close)
            lane.add_listener(metrics.record_outcome)
            lanes.append(lane)
        display, help_desk = _driver_side(config, store, lanes, lights, buttons)
        return Agent(config, store, lanes, resources, metrics, display=display, help_desk=help_desk)
    except BaseException:
        resources.close()
        raise


def _driver_side(
    config: AgentConfig,
    store: Store,
    lanes: list[Lane],
    lights: dict[str, LaneLight],
    buttons: dict[str, HelpButton],
) -> tuple[DisplayHub, HelpDesk]:
    """What drivers see and press: the lane displays and lights, the help buttons."""
    by_id = {lane.lane_id: lane for lane in lanes}
    display = DisplayHub(config, by_id, store, lights=lights)
    help_desk = HelpDesk(
        store, lot_id=config.lot.id, directions={i: lane.direction for i, lane in by_id.items()}
    )
    help_desk.add_listener(display.help_requested)
    for lane in lanes:
        lane.add_listener(display.notify)  # only enqueues: the lane thread never waits for it
        lane.add_listener(help_desk.answered)
    for lane_id, button in buttons.items():
        button.subscribe(lambda lane_id=lane_id: help_desk.request(lane_id))  # type: ignore[misc]
    return display, help_desk


def run_agent(config: AgentConfig) -> int:
    """Run until SIGTERM/SIGINT; exit code for the CLI."""
    agent = build_agent(config)
    # The models, the cache connections and the web app are long-lived: move them out of the
    # garbage collector's generations so a full collection never pauses a lane mid-frame.
    gc.collect()
    gc.freeze()
    agent.start()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        agent.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return supervise(agent, Watchdog.for_agent(agent.lanes.values()))


def supervise(agent: Agent, watchdog: Watchdog) -> int:
    """The main loop of a started agent: tell systemd it is ready, send the watchdog keep-alive
    while every lane loop ticks (:mod:`gate_agent.watchdog`), stop the agent when asked."""
    try:
        watchdog.ready(f"lot {agent.config.lot.id}: {len(agent.lanes)} lane(s) running")
        while not agent.wait(watchdog.interval):
            watchdog.keepalive()
    finally:
        watchdog.stopping()
        agent.stop()
    return 0
