"""Cloud API fixtures: migrated SQLite databases (PostgreSQL: ``postgres_db``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.app import create_app
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.migrate import upgrade
from cloud_api.settings import Settings
from devservices import World, seed_world
from tests.support.cloud import Clock, TestClient


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite file database."""
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade(url)
    return url


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The database of ``world``, ``client`` and ``session_factory``: SQLite unless a test module
    overrides it (``test_policies`` runs on both databases)."""
    return sqlite_url


@pytest.fixture
def session_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as s:
        yield s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(database_url: str) -> World:
    return seed_world(database_url)


@pytest.fixture
def client(database_url: str, world: World, clock: Clock) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=database_url, hold_sweep_seconds=0), clock=clock)
    with TestClient(app) as c:
        yield c
