"""The stays page: the cars inside with their kind of stay, what each owes now (priced as the exit
would, with the synced tariff) and what each has paid through; plates for operators only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from gate_agent.app import Agent
from gate_agent.domain import StayKind, StayPayment
from gate_agent.recognition import Recognizer
from gate_agent.web import create_web_app, hash_password
from parkgate_protocol import parse_policy, price_stay
from tests.gate_agent.test_web_api import PASSWORD, TestClient, build_web_agent, login
from tests.support.sync import car_inside

POLICY = {"version": 3, "drive_up": True, "drive_up_spaces": 4, "pay_before_exit": True}


@pytest.fixture
def agent(
    tmp_path: Path, dataset_dir: Path, recognizer: Recognizer, pins: MockFactory
) -> Iterator[Agent]:
    built = build_web_agent(tmp_path, dataset_dir, recognizer, pins, hash_password(PASSWORD))
    built.store.apply_policy(parse_policy(POLICY), POLICY)
    yield built
    built.stop()


def inside(agent: Agent, plate: str, stay: str, kind: StayKind, hours: float) -> datetime:
    entered = datetime.now(UTC) - timedelta(hours=hours)
    car_inside(agent.store, plate, stay, at=entered, kind=kind, lot_id="lot-web")
    return entered


def test_the_stays_page_prices_every_car_inside(agent: Agent) -> None:
    entered = inside(agent, "DU111AA", "s1", StayKind.DRIVE_UP, 3)
    inside(agent, "PD222BB", "s2", StayKind.DRIVE_UP, 2)
    inside(agent, "PM333CC", "s3", StayKind.PERMIT, 30)
    paid_through = datetime.now(UTC)
    agent.store.apply_stay_payment(StayPayment("s2", 500, paid_through, "EUR", "p"), "PD222BB")
    owed = price_stay(parse_policy(POLICY).tariff, entered, datetime.now(UTC))

    with TestClient(create_web_app(agent, agent.config.web), follow_redirects=False) as client:
        anonymous = client.get("/stays")
        assert anonymous.status_code in (303, 401) and "DU111AA" not in anonymous.text
        assert login(client).status_code == 303
        page = client.get("/stays").text

    assert "3 vehicle(s) inside, 2 drive-up." in page
    for plate in ("DU111AA", "PD222BB", "PM333CC"):
        assert plate in page
    assert f"{owed / 100:.2f} EUR" in page and "payment_due" in page
    assert paid_through.strftime("%Y-%m-%d %H:%M:%S UTC") in page and ">paid<" in page
    assert ">permit<" in page and ">exit_paid<" in page
