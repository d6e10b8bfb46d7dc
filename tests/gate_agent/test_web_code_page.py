"""The lane code-entry page for a driver's phone: a booking id or access code plus the plate's
last three characters opens the lane through the lane's own path (journaled, pulsed); a miss says
nothing about other drivers; the form is CSRF-protected, body-limited, rate-limited and fuzzed."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate_agent.app import Agent
from gate_agent.domain import EventKind
from gate_agent.recognition import Recognizer
from gate_agent.web import create_web_app, hash_password
from gate_agent.web.throttle import CodeThrottle
from tests.gate_agent.test_web_api import (
    BOOKED_PLATE,
    LANE,
    PASSWORD,
    build_web_agent,
    csrf_of,
    pin_states,
)
from tests.support.codes import KEY, code_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BOOKING = "bk_web1"  # build_web_agent's booking of BOOKED_PLATE
PAGE = f"/lanes/{LANE}/code"
NO_MATCH = "No booking matches"
SECRETS = (BOOKED_PLATE, BOOKING)


@pytest.fixture
def agent(
    tmp_path: Path, dataset_dir: Path, recognizer: Recognizer, pins: MockFactory
) -> Iterator[Agent]:
    built = build_web_agent(tmp_path, dataset_dir, recognizer, pins, hash_password(PASSWORD))
    built.store.replace_access_keys([KEY])
    yield built
    built.stop()


def client_for(agent: Agent, throttle: CodeThrottle | None = None) -> TestClient:
    app = create_web_app(agent, agent.config.web, code_throttle=throttle)
    return TestClient(app, follow_redirects=False)


def enter(client: TestClient, booking: str, plate_end: str) -> httpx.Response:
    token = csrf_of(client.get(PAGE).text)
    return client.post(PAGE, data={"booking": booking, "plate_end": plate_end, "csrf": token})


def test_the_booking_and_its_plate_ending_open_the_lane_once(
    agent: Agent, pins: MockFactory
) -> None:
    with client_for(agent) as client:
        form = client.get(PAGE)
        assert form.status_code == 200 and 'name="plate_end"' in form.text
        assert all(s not in form.text for s in SECRETS)
        opened = enter(client, BOOKING, BOOKED_PLATE[-3:].lower())
        assert opened.status_code == 200 and "barrier is opening" in opened.text
        again = enter(client, BOOKING, BOOKED_PLATE[-3:])
        assert "already used" in again.text
    first, second = sorted(agent.store.events(), key=lambda e: e.occurred_at or datetime.min)
    assert (first.kind, first.reason, first.reservation_id) == (
        EventKind.ENTRY,
        "booking_code",
        BOOKING,
    )
    assert (second.kind, second.reason) == (EventKind.DENIED, "code_used")
    assert pin_states(pins).count(True) == 1  # one pulse
    assert [p.plate for p in agent.store.inside()] == [BOOKED_PLATE]


def test_an_access_code_works_too(agent: Agent, pins: MockFactory) -> None:
    code = code_for(BOOKING, datetime.now(UTC) + timedelta(hours=3), lot_id="lot-web")
    with client_for(agent) as client:
        assert NO_MATCH in enter(client, code, "XYZ").text  # a valid code, the wrong plate
        assert agent.store.events() == []
        assert "barrier is opening" in enter(client, code, BOOKED_PLATE[-3:]).text
    [event] = agent.store.events()
    assert event.reason == "booking_code" and pin_states(pins).count(True) == 1


def test_a_miss_never_tells_whose_booking_it_was(agent: Agent, pins: MockFactory) -> None:
    forged = code_for(BOOKING, datetime.now(UTC) + timedelta(hours=3), lot_id="lot-other")
    misses = [(BOOKING, "000"), ("bk_nobody", BOOKED_PLATE[-3:]), (forged, BOOKED_PLATE[-3:])]
    misses += [("v1.garbage", "658"), ("<script>", "658")]
    with client_for(agent) as client:
        answers = [enter(client, booking, end) for booking, end in misses]
    for answer in answers:
        assert answer.status_code == 200 and NO_MATCH in answer.text
        assert all(s not in answer.text for s in SECRETS) and "<script>" not in answer.text
    assert agent.store.events() == [] and pin_states(pins).count(True) == 0


def test_tries_are_limited_per_address_and_the_body_is_limited(agent: Agent) -> None:
    with client_for(agent, CodeThrottle(per_address=3, per_lane=100)) as client:
        assert [enter(client, "bk_x", "123").status_code for _ in range(3)] == [200] * 3
        refused = enter(client, BOOKING, BOOKED_PLATE[-3:])
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        token = csrf_of(client.get(PAGE).text)
        big = client.post(PAGE, data={"booking": "b" * 4000, "plate_end": "1", "csrf": token})
        assert big.status_code == 413
        assert client.post(PAGE, data={"booking": BOOKING, "plate_end": "658"}).status_code == 403
        assert client.get("/lanes/no-such-lane/code").status_code == 404
    assert agent.store.events() == []  # the correct booking after the limit did not open


def test_the_throttle_counts_per_lane_too() -> None:
    now = [0.0]
    throttle = CodeThrottle(per_address=2, per_lane=3, window_s=60, clock=lambda: now[0])
    assert [throttle.attempt("in", f"10.0.0.{i}") for i in range(3)] == [None] * 3
    assert throttle.attempt("in", "10.0.0.9") is not None  # the lane's limit, any address
    assert throttle.attempt("out", "10.0.0.9") is None  # another lane
    now[0] = 61.0
    assert throttle.attempt("in", "10.0.0.9") is None  # the window slid


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    booking=st.one_of(
        st.text(max_size=250), st.sampled_from([BOOKING, "v1.lot-web.bk_web1.1.k1.x"])
    ),
    plate_end=st.one_of(st.text(max_size=20), st.just(BOOKED_PLATE[-2:])),
    raw=st.one_of(st.none(), st.binary(max_size=3000)),
)
def test_fuzzed_input_never_errors_and_never_opens(
    agent: Agent, pins: MockFactory, booking: str, plate_end: str, raw: bytes | None
) -> None:
    unlimited = CodeThrottle(per_address=10**9, per_lane=10**9)
    with client_for(agent, unlimited) as client:
        token = csrf_of(client.get(PAGE).text)
        if raw is None:
            answer = client.post(
                PAGE, data={"booking": booking, "plate_end": plate_end, "csrf": token}
            )
        else:
            headers = {"content-type": "application/x-www-form-urlencoded"}
            answer = client.post(PAGE, content=raw, headers=headers)
    assert answer.status_code in (200, 403, 413, 422), answer.text
    assert BOOKED_PLATE not in answer.text
    assert pin_states(pins).count(True) == 0 and agent.store.events() == []


def test_the_lane_display_shows_the_code_page_on_a_denial_and_the_pay_link_when_owing() -> None:
    import json

    from gate_agent.display import Screen, ScreenState
    from gate_agent.web.pages_display import screen_json

    url = "http://192.168.1.20:8080/lanes/entry-1/code"
    denied = json.loads(screen_json(Screen(ScreenState.DENIED, "No booking found"), url))
    assert denied["qr_url"] == url and "<svg" in denied["qr_svg"]
    owes = Screen(ScreenState.OWES, "Please pay", pay_url="https://pay.example/p/1")
    assert json.loads(screen_json(owes, url))["qr_url"] == "https://pay.example/p/1"
    assert json.loads(screen_json(Screen(ScreenState.OPEN, "Welcome"), url))["qr_svg"] == ""
