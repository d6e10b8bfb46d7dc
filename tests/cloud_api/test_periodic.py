"""The cloud's periodic work outlives any exception: logged, counted, reported in /health."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.app import create_app
from cloud_api.outbox import OutboxWorker
from cloud_api.periodic import PeriodicJob
from cloud_api.settings import Settings
from devservices import World, wait_for
from tests.support.cloud import Clock, TestClient


def test_a_job_keeps_its_schedule_through_any_exception() -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.DatabaseError("database disk image is malformed")  # not OSError
        if len(calls) == 2:
            raise RuntimeError("a bug")

    job = PeriodicJob("test", 0.01, work).start()
    try:
        wait_for(lambda: len(calls) >= 3, what="a third round")
    finally:
        job.stop()
    assert job.health.failures == 2
    assert not job.health.failing and job.health.last_error == "RuntimeError"


def test_health_reports_a_failing_retention_job_and_its_recovery(
    database_url: str, world: World, session_factory: sessionmaker[Session]
) -> None:
    settings = Settings(
        database_url=database_url, hold_sweep_seconds=0.02, retention_sweep_seconds=0.02
    )
    app = create_app(settings, clock=Clock())
    with session_factory.begin() as s:  # inject a failure: a table the retention job trims
        s.execute(text("ALTER TABLE ingest_dead_letters RENAME TO parked"))
    with TestClient(app) as client:

        def failing() -> dict | None:
            body = client.get("/health").json()
            return body if body["jobs"]["retention"]["failures"] >= 2 else None

        body = wait_for(failing, what="the retention job to fail twice")
        assert isinstance(body, dict)
        assert body["status"] == "degraded" and body["failing"] == ["retention"]
        assert body["jobs"]["retention"]["last_error"] == "OperationalError"
        assert body["jobs"]["hold-sweep"]["runs"] >= 1  # the other job goes on

        with session_factory.begin() as s:
            s.execute(text("ALTER TABLE parked RENAME TO ingest_dead_letters"))
        wait_for(lambda: client.get("/health").json()["status"] == "ok", what="recovery")


def test_the_outbox_worker_outlives_a_failed_round(
    session_factory: sessionmaker[Session],
) -> None:
    rounds: list[datetime] = []
    recovered = threading.Event()

    def reminders(_session: Session, now: datetime) -> None:
        rounds.append(now)
        if len(rounds) == 1:
            raise OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked"))
        recovered.set()

    worker = OutboxWorker(session_factory, {}, periodic=reminders)
    stop = threading.Event()
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), kwargs={"idle_seconds": 0.01}
    )
    thread.start()
    try:
        assert recovered.wait(10), "the worker died with its first failed round"
    finally:
        stop.set()
        thread.join(5)
    assert worker.failed_rounds == 1
