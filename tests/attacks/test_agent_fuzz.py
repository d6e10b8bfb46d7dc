"""A Hypothesis fuzz of the agent's web app: random methods, paths, queries, headers and bodies,
anonymous, with the API token or an operator's session, never get a 500 and never open the
barrier."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate_agent.app import Agent
from gate_agent.web import create_web_app
from tests.attacks.conftest import API_TOKEN, LANE, csrf_of, pulses
from tests.gate_agent.test_web_api import OPERATOR, PASSWORD

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SEGMENTS = ["api", "lanes", LANE, "nope", "frames", "open", "evaluate", "events", "status"]
SEGMENTS += ["occupancy", "reset", "login", "logout", "why", "audit", "metrics", "panel", "..", ""]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xx",
    "multipart/form-data",
    "application/json",
    "image/jpeg",
    "text/plain; charset=utf-8",
]
random_segment = st.text(min_size=1, max_size=12).map(lambda text: quote(text, safe=""))
segment = st.one_of(st.sampled_from(SEGMENTS), random_segment)
# empty segments make "//" inside a path, never at its start (httpx would read that as a host
# and send nothing)
paths = st.lists(segment, min_size=1, max_size=5).map(lambda p: "/" + "/".join(p).lstrip("/"))
queries = st.dictionaries(
    st.sampled_from(["limit", "act", "plate", "kind", "lane_id", "reason", "since", "x"]),
    st.text(max_size=20),
    max_size=3,
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        lambda fields: "&".join(f"{k}={v}" for k, v in fields.items()).encode(),
        st.dictionaries(st.sampled_from(["csrf", "reason", "plate", "act", "image"]), st.text()),
    ),
    st.builds(
        lambda payload: (
            b"--xx\r\nContent-Disposition: form-data; name=image; filename=a.jpg"
            b"\r\n\r\n" + payload + b"\r\n--xx--\r\n"
        ),
        st.binary(max_size=1024),
    ),
)


@pytest.fixture
def clients(running_agent: Agent) -> Iterator[dict[str, TestClient]]:
    app = create_web_app(running_agent)
    with (
        TestClient(app, follow_redirects=False) as anonymous,
        TestClient(app, follow_redirects=False) as operator,
    ):
        token = csrf_of(operator.get("/login").text)
        login = {"username": OPERATOR, "password": PASSWORD, "csrf": token}
        assert operator.post("/login", data=login).status_code == 303
        yield {"anonymous": anonymous, "operator": operator, "token": anonymous}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    who=st.sampled_from(["anonymous", "operator", "token"]),
    method=st.sampled_from(METHODS),
    path=paths,
    query=queries,
    content_type=st.sampled_from(CONTENT_TYPES),
    body=bodies,
)
def test_random_requests_never_fail_and_never_open(
    clients: dict[str, TestClient],
    pins: MockFactory,
    who: str,
    method: str,
    path: str,
    query: dict[str, str],
    content_type: str,
    body: bytes,
) -> None:
    headers = {"content-type": content_type}
    if who == "token":
        headers["authorization"] = f"Bearer {API_TOKEN}"
    response = clients[who].request(method, path, params=query, content=body, headers=headers)
    assert response.status_code < 500, (method, path, response.text[:300])
    assert pulses(pins) == 0
