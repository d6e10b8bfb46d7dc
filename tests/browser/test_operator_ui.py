"""The operator UI in headless Chromium against the real agent (lane thread, uvicorn, mock GPIO)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from playwright.sync_api import Browser, Page, expect

from devservices import wait_for
from gate_agent.app import Agent
from tests.gate_agent.test_web_api import (
    BOOKED_PHOTO,
    BOOKED_PLATE,
    LANE,
    OPERATOR,
    PASSWORD,
    pin_states,
)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def base_url(agent: Agent) -> str:
    assert agent.web is not None
    return agent.web.url


def log_in(page: Page, agent: Agent) -> None:
    page.goto(base_url(agent) + "/")
    expect(page).to_have_url(base_url(agent) + "/login")
    page.get_by_label("Operator").fill(OPERATOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(f"#lane-{LANE}")).to_be_visible()


def pulsed_once(pins: MockFactory) -> bool:
    return pin_states(pins) == [False, True, False]


def test_uploaded_booked_plate_shows_event_and_pulse(
    browser: Browser, running_agent: Agent, pins: MockFactory, dataset_dir: Path, shots: Path
) -> None:
    context = browser.new_context()
    try:
        events = context.new_page()
        log_in(events, running_agent)
        events.goto(base_url(running_agent) + "/events")
        expect(events.locator("td.empty")).to_have_text("No events match.")

        lanes = context.new_page()
        lanes.goto(base_url(running_agent) + "/")
        card = lanes.locator(f"#lane-{LANE}")
        card.get_by_text("Test with a photo").click()
        card.locator("input[name=image]").set_input_files(dataset_dir / BOOKED_PHOTO)
        card.get_by_label("Act on it").check()
        card.get_by_role("button", name="Evaluate").click()
        result = lanes.locator(".result")
        expect(result).to_contain_text("OPENED")
        expect(result).to_contain_text("reservation_valid")
        expect(result.locator(".plate")).to_contain_text(BOOKED_PLATE)
        expect(result.locator(".match-reason")).to_have_text("exact")
        lanes.screenshot(path=str(shots / "commissioning-result.png"), full_page=True)

        # the events page, left open, picks the new event up by itself (live refresh)
        row = events.locator("tbody tr.open").first
        expect(row.locator(".plate")).to_have_text(BOOKED_PLATE, timeout=10_000)
        expect(row).to_contain_text("reservation_valid")
        events.screenshot(path=str(shots / "events-live.png"), full_page=True)

        wait_for(lambda: pulsed_once(pins), timeout=5, what="the barrier pin to pulse")
        lanes.goto(base_url(running_agent) + "/")
        panel = lanes.locator(f"#lane-{LANE} .panel")
        expect(panel.locator(".barrier")).to_contain_text("last pulse")
        expect(panel.locator(".decision")).to_contain_text("OPEN")
        expect(panel.locator(".decision")).to_contain_text(BOOKED_PLATE)
        lanes.screenshot(path=str(shots / "lanes-after-pulse.png"), full_page=True)
    finally:
        context.close()


def test_manual_open_needs_a_reason_and_lands_in_the_audit(
    browser: Browser, running_agent: Agent, pins: MockFactory, shots: Path
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, running_agent)
        card = page.locator(f"#lane-{LANE}")
        card.get_by_text("Manual open").click()
        card.get_by_label("Reason (required)").fill("   ")
        card.get_by_role("button", name="Open barrier").click()
        expect(page.get_by_role("alert")).to_contain_text("a reason is required")
        page.screenshot(path=str(shots / "manual-open-refused.png"), full_page=True)
        assert pin_states(pins) == [False]
        assert running_agent.store.audit_log() == []

        page.goto(base_url(running_agent) + "/")
        card.get_by_text("Manual open").click()
        card.get_by_label("Reason (required)").fill("delivery van, plate covered in mud")
        card.get_by_role("button", name="Open barrier").click()
        expect(page.get_by_role("status")).to_contain_text("Barrier")
        wait_for(lambda: pulsed_once(pins), timeout=5, what="the barrier pin to pulse")

        page.get_by_role("link", name="Audit log").click()
        row = page.locator("tr.audit-manual_open").first
        expect(row.locator(".actor")).to_have_text(OPERATOR)
        expect(row.locator(".why")).to_have_text("delivery van, plate covered in mud")
        expect(row.get_by_role("link", name="frame")).to_be_visible()
        page.screenshot(path=str(shots / "audit-manual-open.png"), full_page=True)
    finally:
        context.close()


def no_horizontal_overflow(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_pages_fit_a_phone_screen(browser: Browser, running_agent: Agent, shots: Path) -> None:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    try:
        page = context.new_page()
        log_in(page, running_agent)
        expect(page.locator(f"#lane-{LANE} img.frame")).to_be_visible()
        for path, name in (
            ("/", "phone-lanes"),
            ("/events", "phone-events"),
            (f"/why?plate={BOOKED_PLATE}", "phone-why"),
            ("/sync", "phone-sync"),
        ):
            page.goto(base_url(running_agent) + path)
            expect(page.locator("main h1")).to_be_visible()
            assert no_horizontal_overflow(page), f"{path} scrolls sideways at 390 px"
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    finally:
        context.close()
