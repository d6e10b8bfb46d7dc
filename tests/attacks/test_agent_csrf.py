"""CSRF: every state-changing route of the agent refuses a cross-site request.

The routes are enumerated from the app itself, so a route added later is covered too. For each,
a logged-in operator's browser is made to send the request a hostile page could: without the
CSRF token, or with it (a leaked token) but from another site (``Origin``, ``Sec-Fetch-Site``).
Every one is refused, nothing is opened or audited, and the operator is still logged in. The
API routes do not take the session cookie at all, so a cookie alone gets 401 there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from gpiozero.pins.mock import MockFactory

from gate_agent.app import Agent
from gate_agent.web import create_web_app
from tests.attacks.conftest import LANE, csrf_of, logged_in, pulses
from tests.gate_agent.test_web_api import BOOKED_PHOTO, BOOKED_PLATE

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
FORMS: dict[str, dict[str, str]] = {
    "/lanes/{lane_id}/open": {"reason": "csrf"},
    "/lanes/{lane_id}/evaluate": {"act": "1", "reason": "csrf"},
    "/occupancy/reset": {"plate": BOOKED_PLATE, "reason": "csrf"},
    "/lanes/{lane_id}/code": {"booking": "bk_web1", "plate_end": BOOKED_PLATE[-3:]},  # no login
}
CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
]


def state_changing_routes(agent: Agent) -> list[tuple[str, str]]:
    """Every (method, path template) of the app that changes state (from its route table)."""
    paths = create_web_app(agent).openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in sorted(paths.items())
        for method in sorted(operations)
        if method.upper() in STATE_CHANGING
    ]


def send(
    client: httpx.Client, method: str, template: str, csrf: str | None, photo: bytes, **kw: Any
) -> httpx.Response:
    data = dict(FORMS.get(template, {}))
    if csrf is not None:
        data["csrf"] = csrf
    uploads = template.endswith(("/evaluate", "/frames"))
    files = {"image": ("car.jpg", photo, "image/jpeg")} if uploads else None
    path = template.replace("{lane_id}", LANE)
    return client.request(method, path, data=data, files=files, **kw)


def test_the_routes_under_test_are_the_acting_ones(running_agent: Agent) -> None:
    paths = {path for _, path in state_changing_routes(running_agent)}
    assert paths >= {"/login", "/logout", *FORMS, "/api/lanes/{lane_id}/frames"}


@pytest.mark.parametrize("headers", CROSS_SITE, ids=["evil-origin", "null-origin", "sec-fetch"])
def test_every_state_changing_route_refuses_cross_site_requests(
    base_url: str,
    running_agent: Agent,
    pins: MockFactory,
    dataset_dir: Path,
    headers: dict[str, str],
) -> None:
    photo = (dataset_dir / BOOKED_PHOTO).read_bytes()
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as browser:
        assert logged_in(browser).status_code == 303
        token = csrf_of(browser.get("/").text)
        for method, template in state_changing_routes(running_agent):
            expected = 401 if template.startswith("/api/") else 403
            forged = send(browser, method, template, None, photo)
            assert forged.status_code == expected, (method, template, "no token")
            leaked = send(browser, method, template, token, photo, headers=headers)
            assert leaked.status_code == expected, (method, template, headers)
        assert browser.get("/").status_code == 200, "still logged in (logout was refused too)"
    with httpx.Client(base_url=base_url, follow_redirects=False) as visitor:
        token = csrf_of(visitor.get("/login").text)
        login = {"username": "alice", "password": "correct horse battery", "csrf": token}
        assert visitor.post("/login", data=login, headers=headers).status_code == 403
    assert pulses(pins) == 0
    assert running_agent.store.audit_log() == [] and running_agent.store.events() == []
