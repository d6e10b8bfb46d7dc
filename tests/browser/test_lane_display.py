"""The drivers' lane display in headless Chromium at 800×480 against the real agent: photos posted
to the lanes take it through idle → open → denied → owes (with a QR code that decodes to the pay
link), back to idle, and through an agent restart by itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from playwright.sync_api import Browser, Page, expect

from devservices import free_port, wait_for_port
from gate_agent.app import Agent, build_agent
from gate_agent.config import AgentConfig, parse_config
from gate_agent.domain import Reservation, ReservationStatus
from gate_agent.recognition import Recognizer
from tests.gate_agent.test_web_api import API_TOKEN, BOOKED_PHOTO, BOOKED_PLATE, UNKNOWN_PHOTO

pytestmark = pytest.mark.browser

PANEL = {"width": 800, "height": 480}
CLOUD = "https://cloud.example"
LOT = "lot-display"
PAY_LINK = f"{CLOUD}/lots/{LOT}/pay?plate={BOOKED_PLATE}"
HOLD_S = 4.0
WAIT_MS = 15_000


def display_config(data_dir: Path, frames: Path, port: int) -> AgentConfig:
    def lane(lane_id: str, direction: str, pin: int) -> dict[str, Any]:
        return {
            "id": lane_id,
            "direction": direction,
            "camera": {"kind": "replay", "path": str(frames), "fps": 2},
            "barrier": {"kind": "gpio", "pin": pin, "pulse_seconds": 0.2, "mock": True},
        }

    return parse_config(
        {
            "lot": {"id": LOT, "data_dir": str(data_dir), "rules": {"pay_before_exit": True}},
            "web": {"port": port, "api_token": API_TOKEN, "session_secret": "s" * 32},
            "sync": {"cloud_url": CLOUD},  # the pay link's base; the lot does not sync here
            "display": {"hold_seconds": HOLD_S},
            "lanes": [lane("entry-1", "entry", 17), lane("exit-1", "exit", 18)],
        }
    )


class Lot:
    """The agent of one lot, restartable on the same port and data directory."""

    def __init__(self, tmp_path: Path, recognizer: Recognizer, pins: MockFactory) -> None:
        frames = tmp_path / "frames"
        frames.mkdir()
        cv2.imwrite(str(frames / "empty-lane.jpg"), np.full((480, 640, 3), 90, np.uint8))
        self.config = display_config(tmp_path / "data", frames, free_port())
        self.recognizer = recognizer
        self.pins = pins
        self.agent: Agent | None = None

    def start(self) -> Agent:
        self.agent = build_agent(self.config, recognizer=self.recognizer, pin_factory=self.pins)
        self.agent.start()
        assert self.agent.web is not None, "the agent did not start its web server"
        wait_for_port(self.agent.web.port)
        return self.agent

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        self.pins.reset()  # the next agent claims the same mock pins

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.web.port}"

    def post_photo(self, lane_id: str, photo: Path) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url}/api/lanes/{lane_id}/frames",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            files={"image": ("car.jpg", photo.read_bytes(), "image/jpeg")},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture
def lot(tmp_path: Path, recognizer: Recognizer, pins: MockFactory) -> Iterator[Lot]:
    lot = Lot(tmp_path, recognizer, pins)
    agent = lot.start()
    now = datetime.now(UTC)
    agent.store.upsert_reservation(
        Reservation(
            "bk_display",
            BOOKED_PLATE,
            now - timedelta(minutes=5),
            now + timedelta(hours=2),
            ReservationStatus.CONFIRMED,
            amount_owed_cents=1250,  # an extra the exit must see paid
            space_label="B12",
        )
    )
    try:
        yield lot
    finally:
        lot.stop()


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "display"
    path.mkdir(exist_ok=True)
    return path


def open_display(page: Page, lot: Lot, lane_id: str) -> None:
    page.goto(f"{lot.url}/display/{lane_id}")
    expect(page.locator("#display")).to_have_attribute("data-connected", "1", timeout=WAIT_MS)


def fits(page: Page) -> bool:
    return bool(
        page.evaluate(
            "document.documentElement.scrollHeight <= innerHeight"
            " && document.documentElement.scrollWidth <= innerWidth"
        )
    )


def decoded_qr(png: Path) -> str:
    image = cv2.imread(str(png))
    text, points, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert points is not None, "no QR code found on the screenshot"
    return str(text)


def test_display_goes_idle_open_denied_owes_and_back(
    browser: Browser, lot: Lot, dataset_dir: Path, shots: Path
) -> None:
    context = browser.new_context(viewport=PANEL)
    try:
        entry = context.new_page()
        open_display(entry, lot, "entry-1")
        screen = entry.locator("#display")
        expect(screen.locator(".headline")).to_have_text(f"Welcome to {LOT}")
        entry.screenshot(path=str(shots / "1-idle-800x480.png"))

        assert lot.post_photo("entry-1", dataset_dir / BOOKED_PHOTO)["open"] is True
        expect(screen).to_have_class("display state-open", timeout=WAIT_MS)
        expect(screen.locator(".headline")).to_have_text(f"Welcome {BOOKED_PLATE}")
        expect(screen.locator(".detail")).to_have_text("Your space: B12")
        assert fits(entry)
        entry.screenshot(path=str(shots / "2-open-800x480.png"))

        assert lot.post_photo("entry-1", dataset_dir / UNKNOWN_PHOTO)["open"] is False
        expect(screen).to_have_class("display state-denied", timeout=WAIT_MS)
        expect(screen.locator(".headline")).to_contain_text("No booking found for")
        expect(screen.locator(".hint")).to_have_text(
            "Scan your booking QR code under the camera or press Help"
        )
        assert fits(entry)
        entry.screenshot(path=str(shots / "3-denied-800x480.png"))

        # a few seconds on, the screen forgets the driver: back to idle, no plate left on it
        expect(screen.locator(".headline")).to_have_text(f"Welcome to {LOT}", timeout=WAIT_MS)
        expect(screen).not_to_contain_text(BOOKED_PLATE)

        exit_page = context.new_page()
        open_display(exit_page, lot, "exit-1")
        answer = lot.post_photo("exit-1", dataset_dir / BOOKED_PHOTO)
        assert (answer["open"], answer["reason"]) == (False, "payment_due")
        owes = exit_page.locator("#display")
        expect(owes).to_have_class("display state-owes", timeout=WAIT_MS)
        expect(owes.locator(".headline")).to_have_text("Please pay 12.50 €")
        expect(owes.locator(".qr svg")).to_be_visible()
        assert fits(exit_page)
        shot = shots / "4-owes-800x480.png"
        exit_page.screenshot(path=str(shot))
        assert decoded_qr(shot) == PAY_LINK
        exit_page.set_viewport_size({"width": 1920, "height": 1080})
        big = shots / "4-owes-1920x1080.png"
        exit_page.screenshot(path=str(big))
        assert fits(exit_page) and decoded_qr(big) == PAY_LINK
    finally:
        context.close()


def test_display_recovers_by_itself_after_the_agent_restarts(
    browser: Browser, lot: Lot, dataset_dir: Path, shots: Path
) -> None:
    context = browser.new_context(viewport=PANEL)
    try:
        page = context.new_page()
        open_display(page, lot, "exit-1")
        screen = page.locator("#display")
        lot.stop()
        expect(screen).to_have_attribute("data-connected", "0", timeout=WAIT_MS)
        lot.start()
        expect(screen).to_have_attribute("data-connected", "1", timeout=WAIT_MS)
        lot.post_photo("exit-1", dataset_dir / UNKNOWN_PHOTO)
        expect(screen).to_have_class("display state-denied", timeout=WAIT_MS)
        expect(screen.locator(".headline")).to_contain_text("No booking found for")
        page.screenshot(path=str(shots / "5-after-restart-800x480.png"))
    finally:
        context.close()
