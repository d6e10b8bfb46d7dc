"""Issue 14 finding 2: request bodies are limited and authenticated before they are read.

Before the fix anyone who reached the port could stream an unlimited body to any POST route: the
server read it all (the multipart parser spooling parts over 1 MB to temporary files on the SD
card) before a route looked at the session or token. Now every state-changing request but the
login is refused with 401 before a byte of its body is read, and every body over its route's limit
gets 413 as soon as its size is known, without ever reaching the multipart parser.
"""

from __future__ import annotations

import select
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
import starlette.formparsers
from gpiozero.pins.mock import MockFactory

from gate_agent.app import Agent
from tests.attacks.conftest import API_TOKEN, LANE, logged_in, pulses, raw_request
from tests.gate_agent.test_web_api import BOOKED_PHOTO

HUGE = 100 * 2**20
PAGE_POSTS = ["/logout", f"/lanes/{LANE}/open", f"/lanes/{LANE}/evaluate", "/occupancy/reset"]
API_POSTS = [f"/api/lanes/{LANE}/frames", "/api/lanes/no-such-lane/frames"]


class RecordingSpool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """Notes every upload part that was spooled to a file on disk."""

    rolled: ClassVar[list[int]] = []

    def rollover(self) -> None:
        RecordingSpool.rolled.append(self._max_size)  # type: ignore[attr-defined]
        super().rollover()


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    RecordingSpool.rolled = []
    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", RecordingSpool)
    yield RecordingSpool.rolled


def head(method: str, path: str, *headers: str, length: int | None = HUGE) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Content-Type: multipart/form-data; boundary=xx")
    return "\n".join(lines) + "\n"


def status_of(answer: str) -> int:
    assert answer, "the server read on instead of answering"
    return int(answer.split(" ", 2)[1])


def session_cookie(base_url: str) -> str:
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        assert logged_in(client).status_code == 303
        return f"Cookie: pg_session={client.cookies['pg_session']}"


def test_anonymous_bodies_are_refused_before_they_are_read(
    running_agent: Agent, pins: MockFactory, spooled: list[int]
) -> None:
    assert running_agent.web is not None
    port = running_agent.web.port
    chunk = b"x" * 4096  # the rest of the claimed 100 MB never comes
    for path in [*PAGE_POSTS, *API_POSTS, "/nowhere"]:
        assert status_of(raw_request(port, head("POST", path), chunk)) == 401, path
    assert status_of(raw_request(port, head("PUT", "/api/status"), chunk)) == 401
    # the login form has to be open to everyone, so it is the smallest
    assert status_of(raw_request(port, head("POST", "/login"), chunk)) == 413
    assert status_of(raw_request(port, head("GET", "/healthz"), chunk)) == 413
    assert spooled == [] and pulses(pins) == 0 and running_agent.store.audit_log() == []


def test_authenticated_bodies_over_the_route_limit_get_413_unread(
    running_agent: Agent, base_url: str, spooled: list[int]
) -> None:
    assert running_agent.web is not None
    port = running_agent.web.port
    cookie = session_cookie(base_url)
    bearer = f"Authorization: Bearer {API_TOKEN}"
    over_upload = running_agent.config.web.max_upload_bytes + 1
    for path in API_POSTS:
        answer = raw_request(port, head("POST", path, bearer, length=over_upload), b"--xx\r\n")
        assert status_of(answer) == 413, path
        assert "connection: close" in answer.lower()
    for path in PAGE_POSTS:
        limit = over_upload if path.endswith("/evaluate") else 64 * 1024 + 1
        answer = raw_request(port, head("POST", path, cookie, length=limit), b"--xx\r\n")
        assert status_of(answer) == 413, path
    assert spooled == []


def stream_chunked(port: int, request_head: str, total: int) -> str:
    """Stream a chunked body of ``total`` bytes, stopping when the server answers; the answer."""
    part = b"--xx\r\nContent-Disposition: form-data; name=image; filename=a.jpg\r\n\r\n"
    chunk = b"\xff" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_head.replace("\n", "\r\n").encode() + b"\r\n")
        sent = 0
        try:
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed while we were still sending
        return sock.recv(4096).decode("latin-1")


def test_a_chunked_upload_over_the_limit_is_never_spooled_to_disk(
    running_agent: Agent, spooled: list[int]
) -> None:
    assert running_agent.web is not None
    request_head = head(
        "POST",
        f"/api/lanes/{LANE}/frames",
        f"Authorization: Bearer {API_TOKEN}",
        "Transfer-Encoding: chunked",
        length=None,
    )
    answer = stream_chunked(running_agent.web.port, request_head, 3 * 2**20 + HUGE // 8)
    assert status_of(answer) == 413
    assert spooled == [], "an upload over the limit reached the multipart parser's temp files"


def test_uploads_within_the_limit_still_work(base_url: str, dataset_dir: Path) -> None:
    response = httpx.post(
        f"{base_url}/api/lanes/{LANE}/frames?act=false",
        files={"image": ("car.jpg", (dataset_dir / BOOKED_PHOTO).read_bytes(), "image/jpeg")},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["plate"] == "K179658"
