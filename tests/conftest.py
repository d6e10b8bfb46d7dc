"""Shared fixtures: real Mosquitto and PostgreSQL instances, dataset and model locations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from devservices import MosquittoInstance, PostgresInstance
from gate_agent.recognition import Recognizer

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PARKGATE_SHARED_DIR", ROOT.parent / "shared"))
os.environ.setdefault("PARKGATE_MODELS_DIR", str(SHARED / "models"))
os.environ.setdefault("PARKGATE_DATASETS_DIR", str(SHARED / "datasets" / "openalpr-endtoend"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    path = Path(os.environ["PARKGATE_MODELS_DIR"])
    if not path.is_dir():
        pytest.fail(f"model directory {path} missing: set PARKGATE_MODELS_DIR")
    return path


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    path = Path(os.environ["PARKGATE_DATASETS_DIR"])
    if not path.is_dir():
        pytest.fail(f"dataset directory {path} missing: set PARKGATE_DATASETS_DIR")
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def recognizer(models_dir: Path) -> Recognizer:
    """The real plate recognizer, loaded once (it is thread-safe and holds no per-lane state)."""
    return Recognizer.from_models(models_dir, threads=2)


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    """gpiozero's mock pins (the suite's one pin factory); each pin keeps its timestamped state
    history."""
    factory = MockFactory()
    yield factory
    factory.reset()
    factory.close()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoInstance]:
    """A private anonymous broker for one test (stop/start it freely)."""
    broker = MosquittoInstance(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresInstance]:
    """One private PostgreSQL cluster for the session; tests create their own databases."""
    pg = PostgresInstance()
    pg.start()
    yield pg
    pg.cleanup()


@pytest.fixture
def postgres_db(postgres_server: PostgresInstance, request: pytest.FixtureRequest) -> str:
    """A fresh database on the private cluster; returns its SQLAlchemy URL."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    postgres_server.create_database(name)
    return postgres_server.url(name)
