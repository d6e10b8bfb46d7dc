"""Issue 14 finding 9 (agent part): /metrics is not open to the LAN.

Before the fix anyone on the booth LAN could scrape ``/metrics``. Now it answers loopback clients
only, or, with ``web.metrics_token`` set, whoever sends that bearer token.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
from gpiozero.pins.mock import MockFactory

from gate_agent.app import Agent
from gate_agent.recognition import Recognizer
from gate_agent.web.app import create_web_app
from tests.attacks.conftest import start_agent

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

METRICS_TOKEN = "scrape-token-0123456789"


def test_metrics_answer_loopback_only_by_default(base_url: str, running_agent: Agent) -> None:
    assert httpx.get(f"{base_url}/metrics").status_code == 200  # the agent's own host
    lan = TestClient(create_web_app(running_agent), client=("192.168.1.50", 40000))
    response = lan.get("/metrics")
    assert response.status_code == 403 and "metrics_token" in response.text


def test_metrics_need_the_token_when_one_is_set(
    tmp_path: Path, recognizer: Recognizer, pins: MockFactory, operator_hash: str
) -> None:
    agent = start_agent(tmp_path, recognizer, pins, operator_hash, metrics_token=METRICS_TOKEN)
    try:
        assert agent.web is not None
        url = f"{agent.web.url}/metrics"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong-token"}).status_code == 403
        scraped = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200 and "parkgate" in scraped.text
    finally:
        agent.stop()
