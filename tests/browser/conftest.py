"""A real agent with its web server on a free port, and headless Debian Chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from playwright.sync_api import Browser, Playwright, sync_playwright

from devservices import free_port, wait_for_port
from gate_agent.app import Agent, build_agent
from gate_agent.config import parse_config
from gate_agent.recognition import Recognizer
from gate_agent.web import hash_password
from tests.gate_agent.test_web_api import PASSWORD, booking, web_agent_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it lives, and code in later test modules that calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make sysdeps` (scripts/ensure-system-deps.sh installs "
            "Debian's chromium); browser tests never download a browser"
        )
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def operator_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "web"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def running_agent(
    tmp_path: Path, recognizer: Recognizer, pins: MockFactory, operator_hash: str
) -> Iterator[Agent]:
    """The whole agent running: lane thread on an empty scene, web server on a free port."""
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "empty-lane.jpg"), np.full((480, 640, 3), 90, np.uint8))
    config = web_agent_config(tmp_path, frames, operator_hash, port=free_port(), fps=2)
    agent = build_agent(parse_config(config), recognizer=recognizer, pin_factory=pins)
    agent.store.upsert_reservation(booking())
    agent.start()
    try:
        assert agent.web is not None, "the agent did not start its web server"
        wait_for_port(agent.web.port)
        yield agent
    finally:
        agent.stop()
