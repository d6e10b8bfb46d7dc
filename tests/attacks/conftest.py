"""Shared fixtures of the attack suite.

Agent: attacks on the agent's web UI, the whole agent running, its web server on a free port.

The lane thread runs on an empty scene (a grey frame), so the barrier only moves when an attack
gets through. Operators, API token and the booked plate are those of
``tests/gate_agent/test_web_api.py``.

Cloud: a seeded world (two lots, two customers, an operator and a device token per lot, an
admin) and a dump of every table to prove a refusal changed nothing.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.app import create_app
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.migrate import upgrade
from cloud_api.settings import Settings
from devservices import World, free_port, seed_world, wait_for_port
from gate_agent.app import Agent, build_agent
from gate_agent.config import parse_config
from gate_agent.recognition import Recognizer
from gate_agent.web import hash_password
from tests.gate_agent.test_web_api import (
    API_TOKEN,
    LANE,
    OPERATOR,
    PASSWORD,
    PIN,
    booking,
    web_agent_config,
)
from tests.support.cloud import Clock, TestClient

__all__ = ["API_TOKEN", "LANE", "OPERATOR", "PASSWORD", "SECRET"]

SECRET = "whsec_attack_tests"


@pytest.fixture(scope="session")
def operator_hash() -> str:
    return hash_password(PASSWORD)


def start_agent(
    tmp_path: Path,
    recognizer: Recognizer,
    pins: MockFactory,
    operator_hash: str,
    **web: Any,
) -> Agent:
    frames = tmp_path / "frames"
    frames.mkdir(exist_ok=True)
    cv2.imwrite(str(frames / "empty-lane.jpg"), np.full((480, 640, 3), 90, np.uint8))
    config = web_agent_config(tmp_path, frames, operator_hash, port=free_port(), fps=2)
    config["web"].update(web)
    agent = build_agent(parse_config(config), recognizer=recognizer, pin_factory=pins)
    agent.store.upsert_reservation(booking())
    agent.start()
    assert agent.web is not None, "the agent did not start its web server"
    wait_for_port(agent.web.port)
    return agent


@pytest.fixture
def running_agent(
    tmp_path: Path, recognizer: Recognizer, pins: MockFactory, operator_hash: str
) -> Iterator[Agent]:
    agent = start_agent(tmp_path, recognizer, pins, operator_hash)
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def base_url(running_agent: Agent) -> str:
    assert running_agent.web is not None
    return running_agent.web.url


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def logged_in(client: httpx.Client, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": OPERATOR, "password": password, "csrf": token})


def pulses(pins: MockFactory) -> int:
    """How many times the barrier output went high."""
    return sum(1 for s in pins.pin(PIN).states if s.state)


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 5.0) -> str:
    """Send a request head (and part of a body) on a raw socket; the status line and headers
    the server answered, or "" when it answered nothing within ``timeout``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            return ""
    return received.decode("latin-1")


# -- cloud ---------------------------------------------------------------------------------


Dump = dict[str, list[tuple[object, ...]]]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade(url)
    return url


@pytest.fixture
def world(database_url: str) -> World:
    return seed_world(database_url)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(database_url: str, world: World, clock: Clock) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, hold_sweep_seconds=0, webhook_secret=SECRET)
    with TestClient(create_app(settings, clock=clock)) as c:
        yield c


def dump(sessions: sessionmaker[Session]) -> Dump:
    """Every row of every table (SQLite), to compare before and after an attack."""
    with sessions() as s:
        tables = s.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ).scalars()
        return {
            name: sorted(
                (tuple(row) for row in s.execute(text(f'SELECT * FROM "{name}"'))), key=repr
            )
            for name in list(tables)
        }
