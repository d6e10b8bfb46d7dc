"""The operator web app and JSON API over a real store, real lanes, mock GPIO and the recognizer.

The agent is built but its lane threads are not started: the camera (a replay folder) only
supplies the "current frame"; decisions come from uploads through the lane's full pipeline.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gpiozero.pins.mock import MockFactory

from gate_agent.app import Agent, build_agent
from gate_agent.config import parse_config
from gate_agent.domain import EventKind, Reservation, ReservationStatus
from gate_agent.recognition import Recognizer
from gate_agent.web import create_web_app, hash_password, verify_password
from gate_agent.web.auth import LoginThrottle

with warnings.catch_warnings():
    # starlette 1.x prefers httpx2 (not installed); httpx 0.28 still works for TestClient
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BOOKED_PHOTO = "us/316b64c0-55bf-4079-a1c0-d93f461a576f.jpg"  # plate K179658
BOOKED_PLATE = "K179658"
UNKNOWN_PHOTO = "us/1e241dc8-8f18-4955-8988-03a0ab49f813.jpg"  # plate CCLVN3
PIN = 17
PULSE_S = 0.2
OPERATOR = "alice"
PASSWORD = "correct horse battery"
API_TOKEN = "t0ken-for-the-lot-api-123456"
LANE = "entry-1"


@pytest.fixture(scope="session")
def operator_hash() -> str:
    return hash_password(PASSWORD)


def web_agent_config(
    tmp_path: Path, frames: Path, operator_hash: str, *, port: int = 8080, fps: float = 2.0
) -> dict[str, Any]:
    return {
        "lot": {"id": "lot-web", "data_dir": str(tmp_path / "data")},
        "passes": {"budget_seconds": 0.8, "gap_seconds": 30},
        "privacy": {"manual_open_frames": True},  # the manual-open test looks at the frame
        "web": {
            "port": port,
            "operators": [{"username": OPERATOR, "password_hash": operator_hash}],
            "api_token": API_TOKEN,
            "session_secret": "s" * 32,
        },
        "lanes": [
            {
                "id": LANE,
                "direction": "entry",
                "camera": {"kind": "replay", "path": str(frames), "fps": fps},
                "barrier": {"kind": "gpio", "pin": PIN, "pulse_seconds": PULSE_S, "mock": True},
            }
        ],
    }


def booking(plate: str = BOOKED_PLATE, rid: str = "bk_web1") -> Reservation:
    now = datetime.now(UTC)
    return Reservation(
        id=rid,
        plate=plate,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=2),
        status=ReservationStatus.CONFIRMED,
    )


def camera_folder(tmp_path: Path, dataset_dir: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "car.jpg").symlink_to(dataset_dir / BOOKED_PHOTO)
    return folder


def build_web_agent(
    tmp_path: Path, dataset_dir: Path, recognizer: Recognizer, pins: MockFactory, op_hash: str
) -> Agent:
    config = parse_config(web_agent_config(tmp_path, camera_folder(tmp_path, dataset_dir), op_hash))
    agent = build_agent(config, recognizer=recognizer, pin_factory=pins)
    agent.store.upsert_reservation(booking())
    return agent


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(client: TestClient | httpx.Client, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": OPERATOR, "password": password, "csrf": token})


def pin_states(pins: MockFactory) -> list[bool]:
    return [s.state for s in pins.pin(PIN).states]


@pytest.fixture
def agent(
    tmp_path: Path,
    dataset_dir: Path,
    recognizer: Recognizer,
    pins: MockFactory,
    operator_hash: str,
) -> Iterator[Agent]:
    agent = build_web_agent(tmp_path, dataset_dir, recognizer, pins, operator_hash)
    yield agent
    agent.stop()


@pytest.fixture
def client(agent: Agent) -> Iterator[TestClient]:
    app = create_web_app(agent, agent.config.web, throttle=LoginThrottle(max_failures=3))
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def operator(client: TestClient) -> TestClient:
    assert login(client).status_code == 303
    return client


def bearer(token: str = API_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def photo(dataset_dir: Path, name: str) -> dict[str, Any]:
    return {"image": ("car.jpg", (dataset_dir / name).read_bytes(), "image/jpeg")}


# -- passwords and login ---------------------------------------------------------------------


def test_password_hash_format_and_verification() -> None:
    encoded = hash_password("s3cret", n=2**10)
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "1024", "8", "1") and salt and digest
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert hash_password("s3cret", n=2**10) != encoded  # salted
    for broken in ("", "scrypt$1$2", "bcrypt$1$8$1$aa$bb", "scrypt$x$8$1$aa$bb"):
        assert not verify_password("s3cret", broken)


def test_cli_hash_password_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from gate_agent.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("hunter2 but longer\n"))
    assert main(["hash-password", "--stdin"]) == 0
    encoded = capsys.readouterr().out.strip()
    assert encoded.startswith("scrypt$") and verify_password("hunter2 but longer", encoded)


def test_pages_need_a_login(client: TestClient) -> None:
    for path in ("/", "/events", "/why?plate=X", "/occupancy", "/sync", "/audit"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/login", path
    assert client.get(f"/lanes/{LANE}/frame.jpg").status_code == 303
    assert client.get("/healthz").json() == {"status": "ok"}


def test_login_logout_and_wrong_password(client: TestClient) -> None:
    assert login(client, "wrong").status_code == 401
    assert client.get("/").status_code == 303
    assert login(client).status_code == 303
    page = client.get("/")
    assert page.status_code == 200 and OPERATOR in page.text and LANE in page.text
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    assert client.get("/").status_code == 303


def test_login_is_rate_limited_per_ip_and_user(client: TestClient) -> None:
    for _ in range(3):
        assert login(client, "nope").status_code == 401
    response = login(client)  # even the right password is not checked now
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert client.get("/").status_code == 303


# -- auth on every acting route --------------------------------------------------------------


ACTING_FORMS = [
    (f"/lanes/{LANE}/open", {"reason": "test"}),
    (f"/lanes/{LANE}/evaluate", {"act": "1"}),
    ("/occupancy/reset", {"plate": BOOKED_PLATE, "reason": "test"}),
]


def test_acting_routes_refuse_anonymous_requests(
    client: TestClient, agent: Agent, pins: MockFactory, dataset_dir: Path
) -> None:
    token = csrf_of(client.get("/login").text)
    for path, data in ACTING_FORMS:
        files = photo(dataset_dir, BOOKED_PHOTO) if "evaluate" in path else None
        response = client.post(path, data={**data, "csrf": token}, files=files)
        assert response.status_code == 401, path
    api = f"/api/lanes/{LANE}/frames"
    assert client.post(api, files=photo(dataset_dir, BOOKED_PHOTO)).status_code == 401
    wrong = client.post(api, files=photo(dataset_dir, BOOKED_PHOTO), headers=bearer("x" * 20))
    assert wrong.status_code == 403
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/events", headers=bearer("nope")).status_code == 403
    assert pin_states(pins) == [False]
    assert agent.store.audit_log() == [] and agent.store.events() == []


def test_form_posts_without_the_csrf_token_are_403(
    operator: TestClient, agent: Agent, pins: MockFactory
) -> None:
    for path, data in ACTING_FORMS:
        assert operator.post(path, data=data).status_code == 403, path
        assert operator.post(path, data={**data, "csrf": "forged"}).status_code == 403, path
    assert pin_states(pins) == [False] and agent.store.audit_log() == []


# -- manual open ------------------------------------------------------------------------------


def test_manual_open_needs_a_reason_then_pulses_and_audits(
    operator: TestClient, agent: Agent, pins: MockFactory
) -> None:
    token = csrf_of(operator.get("/").text)
    refused = operator.post(f"/lanes/{LANE}/open", data={"reason": "   ", "csrf": token})
    assert refused.status_code == 400 and "reason is required" in refused.text
    assert pin_states(pins) == [False] and agent.store.audit_log() == []

    opened = operator.post(
        f"/lanes/{LANE}/open", data={"reason": "taxi, plate unreadable", "csrf": token}
    )
    assert opened.status_code == 200 and "Barrier" in opened.text
    assert pin_states(pins)[:2] == [False, True]
    [entry] = agent.store.audit_log()
    assert (entry.actor, entry.action, entry.reason, entry.lane_id) == (
        OPERATOR,
        "manual_open",
        "taxi, plate unreadable",
        LANE,
    )
    [event] = agent.store.events(kind=EventKind.MANUAL_OPEN)
    frame = Path(agent.config.lot.data_dir) / "evidence" / f"{event.event_id}.jpg"
    assert frame.stat().st_size > 1000  # the current camera frame was kept with the open
    audit = operator.get("/audit").text
    assert "taxi, plate unreadable" in audit and f"/events/{event.event_id}/image" in audit
    image = operator.get(f"/events/{event.event_id}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"


# -- JSON API ---------------------------------------------------------------------------------


def test_frames_api_opens_for_a_booked_plate(
    client: TestClient, agent: Agent, pins: MockFactory, dataset_dir: Path
) -> None:
    response = client.post(
        f"/api/lanes/{LANE}/frames", files=photo(dataset_dir, BOOKED_PHOTO), headers=bearer()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("open", "reason", "plate", "booking_id")} == {
        "open": True,
        "reason": "reservation_valid",
        "plate": BOOKED_PLATE,
        "booking_id": "bk_web1",
    }
    assert body["match_reason"] == "exact"  # every decision says how the read matched
    assert len(body["visit_id"]) >= 16
    assert pin_states(pins)[:2] == [False, True]
    events = client.get("/api/events?limit=5", headers=bearer()).json()["events"]
    assert [(e["kind"], e["plate"], e["visit_id"]) for e in events] == [
        ("entry", BOOKED_PLATE, body["visit_id"])
    ]


def test_frames_api_preview_neither_journals_nor_pulses(
    client: TestClient, pins: MockFactory, dataset_dir: Path
) -> None:
    response = client.post(
        f"/api/lanes/{LANE}/frames?act=false",
        files=photo(dataset_dir, BOOKED_PHOTO),
        headers=bearer(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["open"], body["reason"], body["plate"]) == (
        True,
        "reservation_valid",
        BOOKED_PLATE,
    )
    assert pin_states(pins) == [False]
    assert client.get("/api/events?limit=5", headers=bearer()).json()["events"] == []


def test_frames_api_denies_an_unknown_plate(
    client: TestClient, pins: MockFactory, dataset_dir: Path
) -> None:
    response = client.post(
        f"/api/lanes/{LANE}/frames", files=photo(dataset_dir, UNKNOWN_PHOTO), headers=bearer()
    )
    body = response.json()
    assert (body["open"], body["reason"], body["plate"], body["booking_id"]) == (
        False,
        "no_reservation",
        "CCLVN3",
        None,
    )
    assert body["visit_id"]
    assert pin_states(pins) == [False]


def test_frames_api_bad_input_is_4xx_with_a_reason(client: TestClient) -> None:
    url = f"/api/lanes/{LANE}/frames"
    not_image = client.post(
        url, files={"image": ("x.jpg", b"not a jpeg at all", "image/jpeg")}, headers=bearer()
    )
    assert not_image.status_code == 422 and "not an image" in not_image.json()["detail"]
    missing = client.post(url, data={"other": "1"}, headers=bearer())
    assert missing.status_code == 422 and "image" in missing.json()["detail"]
    unknown = client.post(
        "/api/lanes/nope/frames", files={"image": ("x", b"x", "image/png")}, headers=bearer()
    )
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    for query in ("limit=0", "limit=abc", "limit=100000", "kind=bogus"):
        assert client.get(f"/api/events?{query}", headers=bearer()).status_code == 422, query


def test_status_api_shape(client: TestClient, agent: Agent) -> None:
    body = client.get("/api/status", headers=bearer()).json()
    assert body["lot_id"] == "lot-web"
    [lane] = body["lanes"]
    assert lane["id"] == LANE and lane["direction"] == "entry"
    assert set(lane["camera"]) >= {"connected", "fps", "last_frame_age_s", "stale"}
    assert lane["barrier"] == {"open": False, "last_pulse_at": None, "last_pulse_seconds": None}
    assert lane["last_decision"] is None
    assert body["sync"]["enabled"] is False and body["sync"]["outbox_depth"] == 0
    assert body["occupancy"] == {"inside": 0, "vehicles": []}


def test_status_api_accepts_an_operator_session(operator: TestClient) -> None:
    assert operator.get("/api/status").json()["lot_id"] == "lot-web"
