"""Prometheus metrics of the gate agent, served at ``/metrics`` by the status web server.

Each agent has its own :class:`~prometheus_client.CollectorRegistry` (tests build many agents in
one process). Events are counted as they happen (recognition time per lane, decisions by reason,
barrier pulses); gauges that describe state (outbox depth, broker link, retention job failures
and last success, camera fps and frame age, lane loop heartbeat) are read from the live objects
at scrape time by :class:`AgentCollector`.
No label ever holds a plate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gate_agent.domain import PlateRead
from gate_agent.lane import Lane, LaneOutcome
from gate_agent.recognition import Recognizer
from gate_agent.retention import RetentionJob
from gate_agent.store import Store

__all__ = ["CONTENT_TYPE", "AgentCollector", "AgentMetrics", "TimedRecognizer"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Inference on a Pi 4/5 takes 100 ms - 1 s per frame; a desktop 10-50 ms.
RECOGNITION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0)


class MeteredAgent(Protocol):
    """What the scrape-time collector reads of the agent."""

    store: Store

    @property
    def lanes(self) -> Mapping[str, Lane]: ...

    @property
    def sync(self) -> Any: ...

    @property
    def retention(self) -> RetentionJob | None: ...


class TimedRecognizer:
    """One lane's view of the shared recognizer: times every ``read`` into a histogram."""

    def __init__(self, inner: Recognizer, histogram: Histogram) -> None:
        self._inner = inner
        self._histogram = histogram

    def read(self, image: np.ndarray) -> list[PlateRead]:
        started = time.perf_counter()
        try:
            return self._inner.read(image)
        finally:
            self._histogram.observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class AgentMetrics:
    """The agent's registry and its event metrics; :meth:`watch` adds the state gauges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.recognition_seconds = Histogram(
            "parkgate_recognition_seconds",
            "Time to find and read the plates in one frame.",
            ["lane"],
            buckets=RECOGNITION_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "parkgate_decisions",
            "Decided passes by lane, reason code and result (open or denied).",
            ["lane", "reason", "result"],
            registry=self.registry,
        )
        self.barrier_pulses = Counter(
            "parkgate_barrier_pulses",
            "Barrier open pulses commanded after a decision, by result (ok or fault).",
            ["lane", "result"],
            registry=self.registry,
        )

    def timed(self, recognizer: Recognizer, lane_id: str) -> Recognizer:
        """Wrap the shared recognizer for one lane (same interface, timed reads)."""
        timed = TimedRecognizer(recognizer, self.recognition_seconds.labels(lane_id))
        return cast(Recognizer, timed)

    def record_outcome(self, outcome: LaneOutcome) -> None:
        """Lane listener: count the decision and, when it opened, the pulse."""
        decision = outcome.decision
        result = "open" if decision.open else "denied"
        self.decisions.labels(outcome.lane_id, decision.reason.value, result).inc()
        if decision.open:
            pulse = "fault" if outcome.barrier_error else "ok"
            self.barrier_pulses.labels(outcome.lane_id, pulse).inc()

    def watch(self, agent: MeteredAgent) -> None:
        """Register the scrape-time gauges over ``agent``; call once per agent."""
        self.registry.register(AgentCollector(agent))

    def render(self) -> bytes:
        """The exposition text for ``GET /metrics``."""
        return generate_latest(self.registry)


class AgentCollector(Collector):
    """State gauges read at scrape time from the store, the sync client and each lane."""

    def __init__(self, agent: MeteredAgent, clock: Any = time.monotonic) -> None:
        self._agent = agent
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: the series depend on the lanes

    def collect(self) -> Iterator[Metric]:
        agent = self._agent
        outbox = GaugeMetricFamily(
            "parkgate_outbox_depth", "Journal events not yet confirmed by the cloud."
        )
        outbox.add_metric([], agent.store.outbox_depth())
        yield outbox
        sync = agent.sync
        connected = GaugeMetricFamily(
            "parkgate_broker_connected", "1 while the MQTT link to the cloud is up (0: down/off)."
        )
        connected.add_metric([], 1.0 if sync is not None and sync.status.connected else 0.0)
        yield connected
        yield from self._retention(agent.retention)
        yield from self._lanes(agent.lanes)

    def _retention(self, job: RetentionJob | None) -> Iterator[Metric]:
        failures = CounterMetricFamily(
            "parkgate_retention_failures", "Retention runs that failed (the job retries hourly)."
        )
        age = GaugeMetricFamily(
            "parkgate_retention_last_success_age_seconds",
            "Seconds since the retention job last completed (NaN before its first run).",
        )
        health = None if job is None else job.health
        failures.add_metric([], 0 if health is None else health.failures)
        done = None if health is None else health.last_success_at
        age.add_metric([], math.nan if done is None else (datetime.now(UTC) - done).total_seconds())
        yield failures
        yield age

    def _lanes(self, lanes: Mapping[str, Lane]) -> Iterator[Metric]:
        now = self._clock()
        families = {
            "connected": GaugeMetricFamily(
                "parkgate_camera_connected", "1 while the camera delivers frames.", labels=["lane"]
            ),
            "fps": GaugeMetricFamily(
                "parkgate_camera_fps", "Camera frames per second (recent).", labels=["lane"]
            ),
            "age": GaugeMetricFamily(
                "parkgate_camera_frame_age_seconds",
                "Age of the newest camera frame (NaN before the first).",
                labels=["lane"],
            ),
            "loop": GaugeMetricFamily(
                "parkgate_lane_loop_age_seconds",
                "Seconds since the lane loop last ticked (the watchdog restarts a hung lane).",
                labels=["lane"],
            ),
        }
        reconnects = CounterMetricFamily(
            "parkgate_camera_reconnects", "Camera reconnects.", labels=["lane"]
        )
        frames = CounterMetricFamily(
            "parkgate_lane_frames", "Frames the lane has processed.", labels=["lane"]
        )
        for lane_id, lane in lanes.items():
            tick = lane.status.loop_tick_at
            families["loop"].add_metric([lane_id], math.nan if tick is None else now - tick)
            frames.add_metric([lane_id], lane.status.frames)
            if lane.source is None:
                continue
            health = lane.source.health()
            families["connected"].add_metric([lane_id], 1.0 if health.connected else 0.0)
            families["fps"].add_metric([lane_id], health.fps)
            age = health.last_frame_age_s
            families["age"].add_metric([lane_id], math.nan if age is None else age)
            reconnects.add_metric([lane_id], health.reconnects)
        yield from families.values()
        yield reconnects
        yield frames
