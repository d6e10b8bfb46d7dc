"""Attack tests on the cloud API: a seeded world (two lots, two customers, an operator and a
device token per lot, an admin) and a dump of every table to prove a refusal changed nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.app import create_app
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.migrate import upgrade
from cloud_api.settings import Settings
from devservices import World, seed_world
from tests.support.cloud import Clock, TestClient

SECRET = "whsec_attack_tests"

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
