"""The agent's /metrics: scraped through the web app, the series move with what the lanes do."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from devservices import wait_for
from gate_agent.app import Agent, build_agent
from gate_agent.config import parse_config
from gate_agent.recognition import Recognizer
from gate_agent.web.app import create_web_app

with warnings.catch_warnings():
    # starlette 1.x prefers httpx2 (not installed); httpx 0.28 still works for TestClient
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LANE = "entry-1"
IMAGE = np.zeros((48, 64, 3), dtype=np.uint8)
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class NoPlates:
    def predict(self, frame: np.ndarray) -> list[object]:
        return []


def scrape(client: TestClient) -> Series:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.jpg"), IMAGE)
    config = {
        "lot": {"id": "lot-m", "data_dir": str(tmp_path / "data")},
        "web": {"enabled": False},
        "lanes": [
            {
                "id": LANE,
                "direction": "entry",
                "camera": {"kind": "replay", "path": str(frames), "fps": 20},
                "barrier": {"kind": "dry-run", "pulse_seconds": 0.05},
            }
        ],
    }
    agent = build_agent(parse_config(config), recognizer=Recognizer(NoPlates()))
    yield agent
    agent.stop()


def test_metrics_move_with_decisions_pulses_and_outbox(agent: Agent) -> None:
    client = TestClient(create_web_app(agent), client=("127.0.0.1", 50000))  # a local scraper
    before = scrape(client)
    assert value(before, "parkgate_outbox_depth") == 0
    assert value(before, "parkgate_broker_connected") == 0  # sync is off

    lane = agent.lanes[LANE]
    lane.evaluate_image(IMAGE)  # no plate → denied, journaled
    lane.manual_open(actor="op", reason="test")  # open → pulse
    after = scrape(client)

    assert value(after, "parkgate_recognition_seconds_count", lane=LANE) == 1
    assert value(after, "parkgate_recognition_seconds_sum", lane=LANE) > 0
    decisions = "parkgate_decisions_total"
    assert value(after, decisions, lane=LANE, reason="no_plate", result="denied") == 1
    assert value(after, decisions, lane=LANE, reason="manual_open", result="open") == 1
    assert value(after, "parkgate_barrier_pulses_total", lane=LANE, result="ok") == 1
    assert value(after, "parkgate_outbox_depth") == 2
    agent.store.mark_sent([e.event_id for e in agent.store.unsent_events()])
    assert value(scrape(client), "parkgate_outbox_depth") == 2  # the broker's PUBACK is not enough
    agent.store.mark_confirmed([e.event_id for e in agent.store.events()])
    assert value(scrape(client), "parkgate_outbox_depth") == 0


def test_camera_and_lane_loop_gauges_once_running(agent: Agent) -> None:
    client = TestClient(create_web_app(agent), client=("127.0.0.1", 50000))  # a local scraper
    agent.start()

    def camera_flowing() -> Series | None:
        series = scrape(client)
        fps = value(series, "parkgate_camera_fps", lane=LANE)
        return (
            series if fps > 0 and value(series, "parkgate_lane_frames_total", lane=LANE) else None
        )

    series = wait_for(camera_flowing, timeout=10, what="camera fps and processed frames")
    assert isinstance(series, dict)
    assert value(series, "parkgate_camera_connected", lane=LANE) == 1
    assert 0 <= value(series, "parkgate_camera_frame_age_seconds", lane=LANE) < 5
    assert 0 <= value(series, "parkgate_lane_loop_age_seconds", lane=LANE) < 5
    assert value(series, "parkgate_recognition_seconds_count", lane=LANE) >= 1


def test_metrics_live_in_the_agents_own_registry(agent: Agent) -> None:
    agent.lanes[LANE].evaluate_image(IMAGE)
    assert "parkgate_decisions_total" in agent.metrics.render().decode()
    assert REGISTRY.get_sample_value("parkgate_outbox_depth") is None  # not the global one
