"""The operator pages beyond the lanes: why denied, occupancy reset, sync, events search, alarms,
and the access log of the real uvicorn server (no plate in it)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from gpiozero.pins.mock import MockFactory

from devservices import free_port
from gate_agent import wire
from gate_agent.app import Agent
from gate_agent.domain import Direction, EventKind, JournalEvent, Reservation, ReservationStatus
from gate_agent.recognition import Recognizer
from gate_agent.web import create_web_app, hash_password
from gate_agent.web.context import WebContext
from gate_agent.web.server import StripQueryFilter, WebServer
from parkgate_protocol import ListEntrySnapshot, parse_policy
from tests.gate_agent.test_web_api import (
    API_TOKEN,
    BOOKED_PHOTO,
    BOOKED_PLATE,
    LANE,
    PASSWORD,
    TestClient,
    bearer,
    build_web_agent,
    csrf_of,
    login,
    photo,
)


@pytest.fixture(scope="module")
def operator_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def agent(
    tmp_path: Path, dataset_dir: Path, recognizer: Recognizer, pins: MockFactory, operator_hash: str
) -> Iterator[Agent]:
    agent = build_web_agent(tmp_path, dataset_dir, recognizer, pins, operator_hash)
    yield agent
    agent.stop()


@pytest.fixture
def operator(agent: Agent) -> Iterator[TestClient]:
    with TestClient(create_web_app(agent, agent.config.web), follow_redirects=False) as client:
        assert login(client).status_code == 303
        yield client


def journal_denial(agent: Agent, plate: str, reason: str, lane: str = LANE) -> None:
    agent.store.journal(
        JournalEvent(
            lot_id="lot-web",
            kind=EventKind.DENIED,
            lane_id=lane,
            direction=Direction.ENTRY,
            visit_id="v" * 20,
            plate=plate,
            read_text=plate,
            confidence=0.95,
            reason=reason,
        )
    )


def test_why_denied_explains_a_pending_booking_and_a_near_plate(
    operator: TestClient, agent: Agent
) -> None:
    now = datetime.now(UTC)
    agent.store.upsert_reservation(
        Reservation(
            "bk_pending", "ABC123", now, now + timedelta(hours=1), ReservationStatus.PENDING
        )
    )
    journal_denial(agent, "ABC123", "not_paid")
    page = operator.get("/why", params={"plate": "abc 123"}).text
    assert "exact match ABC123" in page
    assert "not_paid" in page and "pending payment" in page
    assert "bk_pending" in page and "Recent denials" in page

    near = operator.get("/why", params={"plate": "ABC128"}).text  # one edit away: another car
    assert "no cached plate" in near and "no_reservation" in near

    booked = operator.get("/why", params={"plate": BOOKED_PLATE}).text
    assert "opens" in booked and "reservation_valid" in booked

    unknown = operator.get("/why", params={"plate": "ZZZ999"}).text
    assert "no cached plate" in unknown and "no_reservation" in unknown


def test_occupancy_lists_who_is_inside_and_resets_with_an_audit(
    operator: TestClient, agent: Agent, dataset_dir: Path
) -> None:
    assert operator.post(
        f"/api/lanes/{LANE}/frames", files=photo(dataset_dir, BOOKED_PHOTO), headers=bearer()
    ).json()["open"]
    page = operator.get("/occupancy").text
    assert BOOKED_PLATE in page and "1 vehicle(s) inside" in page
    panel = operator.get(f"/lanes/{LANE}/panel").text  # the lane shows how the read matched
    assert '<span class="match-reason">exact</span>' in panel
    token = csrf_of(page)
    no_reason = operator.post(
        "/occupancy/reset", data={"plate": BOOKED_PLATE, "reason": " ", "csrf": token}
    )
    assert no_reason.status_code == 400 and agent.store.inside()
    reset = operator.post(
        "/occupancy/reset", data={"plate": BOOKED_PLATE, "reason": "left on foot", "csrf": token}
    )
    assert reset.status_code == 303 and agent.store.inside() == []
    [entry, upload] = agent.store.audit_log()  # newest first: the acting upload is audited too
    assert (entry.actor, entry.action, entry.reason) == ("alice", "presence_reset", "left on foot")
    assert (upload.actor, upload.action) == ("api-token", "photo_upload")


@dataclass
class FakeSync:
    connected: bool = True
    last_applied_seq: int | None = 42
    outbox_depth: int = 3
    last_catch_up_at: datetime | None = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    last_heartbeat_at: datetime | None = None


@dataclass
class FakeSyncClient:
    status: FakeSync


def test_sync_health_disabled_live_and_from_a_client(agent: Agent) -> None:
    def sync_page(sync: object) -> str:
        app = create_web_app(agent, agent.config.web, sync=sync)  # type: ignore[arg-type]
        with TestClient(app, follow_redirects=False) as c:
            login(c)
            return str(c.get("/sync").text), c.get("/api/status").json()["sync"]

    text, api = sync_page(None)
    assert "sync disabled" in text and api["enabled"] is False
    text, api = sync_page(FakeSync())
    assert "broker connected" in text and "42" in text and "2030-01-02T03:04:00+00:00" in text
    assert api == {
        "enabled": True,
        "connected": True,
        "last_applied_seq": 42,
        "outbox_depth": 3,
        "last_catch_up_at": "2030-01-02T03:04:00+00:00",
        "last_heartbeat_at": None,
    }
    text, api = sync_page(FakeSyncClient(FakeSync(connected=False)))
    assert "broker DISCONNECTED" in text and api["connected"] is False


def test_events_search_filters_and_bad_input(operator: TestClient, agent: Agent) -> None:
    journal_denial(agent, "AAA111", "no_reservation")
    journal_denial(agent, "BBB222", "expired", lane="exit-9")
    page = operator.get("/events").text
    assert page.index("BBB222") < page.index("AAA111")  # newest first
    by_plate = operator.get("/events", params={"plate": "aaa111"}).text
    assert "AAA111" in by_plate and "BBB222" not in by_plate
    by_lane = operator.get("/events/rows", params={"lane": "exit-9"}).text
    assert "BBB222" in by_lane and "AAA111" not in by_lane
    assert "No events match" in operator.get("/events/rows", params={"decision": "open"}).text
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert "No events match" in operator.get("/events/rows", params={"since": future}).text
    for bad in ({"since": "yesterday"}, {"decision": "maybe"}, {"limit": "0"}):
        response = operator.get("/events", params=bad)
        assert response.status_code == 422 and "error" in response.text, bad


def test_lane_alarms_when_the_camera_is_stale_and_no_plate_was_read(agent: Agent) -> None:
    offset = [0.0]
    web = agent.config.web.model_copy(update={"stale_frame_seconds": 1e-6})
    ctx = WebContext.from_agent(agent, web)
    ctx.monotonic = lambda: time.monotonic() + offset[0]
    with TestClient(create_web_app(ctx), follow_redirects=False) as c:
        login(c)
        calm = c.get("/api/status").json()["lanes"][0]["alarms"]
        offset[0] = 31 * 60  # half an hour later, still no plate
        panel = c.get(f"/lanes/{LANE}/panel").text
        [lane] = c.get("/api/status").json()["lanes"]
        frame = c.get(f"/lanes/{LANE}/frame.jpg")
        assert c.get("/lanes/nope/panel").status_code == 404
    assert not any("no plate read" in a for a in calm)
    assert "no plate read for 30 min" in panel and "camera frame stale" in panel
    assert any("no plate read" in a for a in lane["alarms"]) and lane["camera"]["stale"]
    assert frame.headers["content-type"] == "image/jpeg" and frame.content[:2] == b"\xff\xd8"


def test_strip_query_filter_removes_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/why?plate=K179658", "1.1", 200),
        None,
    )
    assert StripQueryFilter().filter(record)
    assert "K179658" not in record.getMessage() and "/why" in record.getMessage()


def test_no_plate_in_the_access_log_of_the_real_server(
    tmp_path: Path,
    dataset_dir: Path,
    recognizer: Recognizer,
    pins: MockFactory,
    operator_hash: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = build_web_agent(tmp_path, dataset_dir, recognizer, pins, operator_hash)
    server = WebServer(create_web_app(agent, agent.config.web), "127.0.0.1", free_port())
    caplog.set_level(logging.INFO)
    try:
        assert server.start()
        with httpx.Client(base_url=server.url, follow_redirects=False) as http:
            assert login(http).status_code == 303
            for path in (f"/why?plate={BOOKED_PLATE}", f"/events?plate={BOOKED_PLATE}"):
                assert http.get(path).status_code == 200
            decision = http.post(
                f"/api/lanes/{LANE}/frames",
                files=photo(dataset_dir, BOOKED_PHOTO),
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ).json()
            assert decision["plate"] == BOOKED_PLATE
            http.get(f"/events/rows?plate={BOOKED_PLATE}&lane={LANE}")
    finally:
        server.stop()
        agent.stop()
    access = [r.getMessage() for r in caplog.records if r.name == "gate_agent.web.access"]
    assert any('"GET /why"' in line for line in access), access
    leaks = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno > logging.DEBUG
        and BOOKED_PLATE in r.getMessage()
        and not r.name.startswith(("httpx", "httpcore"))  # the test's own HTTP client
    ]
    assert leaks == []


def test_policy_page_and_api_say_what_is_in_force_and_where_it_came_from(
    operator: TestClient, agent: Agent
) -> None:
    before = operator.get("/api/status").json()["policy"]
    assert before["version"] is None and before["source"] == "local fall-back"
    assert before["rules"]["early_grace"] == {"value": 15.0, "source": "local fall-back"}
    assert before["rules"]["tariff"] == {"value": None, "source": "local fall-back"}
    assert "local fall-back" in operator.get("/policy").text

    raw = {"version": 6, "early_grace_minutes": 40, "pay_before_exit": False}
    agent.store.apply_policy(parse_policy(raw), raw)
    agent.store.reject_policy({"schema": 2, "version": 7}, "unsupported_policy: schema=2")
    for plate, kind in (("STAFF1", "allow"), ("BAD999", "deny")):
        pushed = {"entry_id": plate, "plate": plate, "kind": kind}
        agent.store.put_list_entry(wire.list_entry(ListEntrySnapshot.model_validate(pushed)))

    after = operator.get("/api/status").json()["policy"]
    assert after["version"] == 6 and after["source"] == "cloud policy v6"
    assert after["rules"]["early_grace"] == {"value": 40.0, "source": "cloud policy v6"}
    assert after["rules"]["pay_before_exit"]["value"] is False
    assert after["rules"]["tariff"]["value"]["vehicles"]["car"]["rate_cents"] == 250
    assert after["policy"]["version"] == 6
    assert after["problem"] == "policy v7 rejected: unsupported_policy: schema=2"
    assert after["last_rejected"]["version"] == 7
    assert after["access_list_entries"] == 2
    page = operator.get("/policy").text
    assert "cloud policy v6" in page and "policy v7 rejected" in page
    assert '<strong class="lists">2</strong>' in page
