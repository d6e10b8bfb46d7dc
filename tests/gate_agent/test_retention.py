"""Privacy: plate reads and evidence images purged after retention; plates hashed with a lot key."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
from gpiozero.pins.mock import MockFactory

from devservices import wait_for
from gate_agent.app import build_agent
from gate_agent.config import parse_config
from gate_agent.domain import EventKind, JournalEvent
from gate_agent.recognition import Recognizer
from gate_agent.retention import (
    EVIDENCE_SUBDIR,
    HASH_KEY_FILE,
    RetentionJob,
    RetentionRun,
    keyed_plate_hasher,
    load_hash_key,
)
from gate_agent.store import Store
from gate_agent.sync import DEAD_LETTERS_FILE, DeadLetters
from gate_agent.sync._outbox import OutboxPublisher
from gate_agent.web import create_web_app, hash_password
from parkgate_protocol import parse_gate_event
from tests.gate_agent.test_sync_outbox import FakeBroker
from tests.gate_agent.test_web_api import (
    LANE,
    PASSWORD,
    TestClient,
    camera_folder,
    csrf_of,
    login,
    web_agent_config,
)


class NoPlates:
    def predict(self, frame: np.ndarray) -> list[object]:
        return []


NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def denied(plate: str, when: datetime, *, image: bool = True) -> JournalEvent:
    event = JournalEvent(
        lot_id="lot-r",
        kind=EventKind.DENIED,
        lane_id="entry-1",
        plate=plate,
        read_text=plate,
        occurred_at=when,
    )
    return replace(event, image_path=f"images/{event.event_id}.jpg") if image else event


def keep_image(image_dir: Path, event: JournalEvent, mtime: datetime | None = None) -> Path:
    assert event.image_path
    path = image_dir / event.image_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8jpeg")
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def test_purge_blanks_old_reads_confirmed_or_not_and_deletes_their_images(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.sqlite3", clock=lambda: NOW) as store:
        old_sent = denied("OLD1", OLD)
        old_unsent = denied("OLD2", OLD)
        recent_sent = denied("NEW1", NOW - timedelta(days=1))
        for event in (old_sent, old_unsent, recent_sent):
            store.journal(event)
        store.mark_confirmed([old_sent.event_id, recent_sent.event_id])
        # fresh files on disk: the purged events' images go because their events were purged
        old_sent_image = keep_image(tmp_path, old_sent)
        old_unsent_image = keep_image(tmp_path, old_unsent)
        recent_image = keep_image(tmp_path, recent_sent)
        orphan = tmp_path / "images" / "orphan.jpg"
        orphan.write_bytes(b"x")
        os.utime(orphan, (OLD.timestamp(), OLD.timestamp()))  # older than retention: deleted

        job = RetentionJob(store, retention_days=30, image_dir=tmp_path, clock=lambda: NOW)
        assert job.run_once() == RetentionRun(blanked=2, images_deleted=3)

        by_id = {e.event_id: e for e in store.events(10)}
        for old in (old_sent, old_unsent):
            assert by_id[old.event_id].plate is None
            assert by_id[old.event_id].read_text is None
            assert by_id[old.event_id].image_path is None
        assert by_id[recent_sent.event_id].plate == "NEW1"
        assert not old_sent_image.exists() and not old_unsent_image.exists()
        assert not orphan.exists()
        assert recent_image.exists()
        assert job.run_once() == RetentionRun()  # idempotent


def test_an_offline_lot_keeps_no_plate_past_retention_and_still_sends_the_event_once() -> None:
    clock = Clock(OLD)
    with Store(":memory:", clock=clock) as store:
        offline = denied("OFF1", OLD, image=False)
        store.journal(offline)
        sent_unconfirmed = denied("OFF2", OLD, image=False)
        store.journal(sent_unconfirmed)
        store.mark_sent([sent_unconfirmed.event_id])  # the broker took it, the cloud never said
        clock.now = NOW
        job = RetentionJob(store, retention_days=30, clock=clock)
        assert job.run_once().blanked == 2
        assert {e.plate for e in store.events(10)} == {None}
        assert store.outbox_depth() == 2  # still owed to the cloud

        broker = FakeBroker()
        outbox = OutboxPublisher(store, broker.publish)
        outbox.reconnected()  # after a reconnect the unconfirmed one goes back in the outbox
        outbox.pump(connected=True)
        sent = [parse_gate_event(payload) for payload in broker.published]
        assert sorted(e.event_id for e in sent) == sorted(
            [offline.event_id, sent_unconfirmed.event_id]
        )
        assert all(e.plate is None and e.read_text is None for e in sent)
        for mid in (1, 2):
            outbox.acknowledged(mid, True)
        outbox.confirmed([e.event_id for e in sent])
        outbox.pump(connected=True)
        assert store.outbox_depth() == 0
        outbox.pump(connected=True)
        assert len(broker.published) == 2  # each sent once, nothing more


def test_plates_in_audit_details_go_after_retention() -> None:
    clock = Clock(OLD)
    with Store(":memory:", clock=clock) as store:
        store.reset_presence("AB123", actor="op", reason="left on foot")
        clock.now = NOW
        store.reset_presence("CD456", actor="op", reason="left on foot")
        RetentionJob(store, retention_days=30, clock=clock).run_once()
        new, old = store.audit_log()
        assert "plate" not in old.detail and old.reason == "left on foot"
        assert new.detail["plate"] == "CD456"


def test_audit_entries_past_their_history_are_deleted_in_bounded_batches() -> None:
    clock = Clock(NOW - timedelta(days=500))
    with Store(":memory:", clock=clock) as store:
        for i in range(5):
            store.audit("op", "manual_open", f"old {i}", lane_id="entry-1")
        clock.now = NOW - timedelta(days=10)
        store.audit("op", "manual_open", "recent", lane_id="entry-1")
        assert store.trim_audit(NOW - timedelta(days=400), batch=2) == 5  # three commits
        assert [a.reason for a in store.audit_log()] == ["recent"]
        clock.now = NOW
        store.audit("op", "manual_open", "now", lane_id="entry-1")
        job = RetentionJob(store, retention_days=30, audit_days=400, clock=clock)
        assert job.run_once().audit_trimmed == 0
        clock.now = NOW + timedelta(days=395)  # "recent" is now 405 days old, "now" 395
        assert job.run_once().audit_trimmed == 1
        assert [a.reason for a in store.audit_log()] == ["now"]


def test_manual_open_frames_are_deleted_after_retention(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    old_frame, new_frame = evidence / "a1.jpg", evidence / "b2.jpg"
    for frame in (old_frame, new_frame):
        frame.write_bytes(b"\xff\xd8jpeg")
    os.utime(old_frame, (OLD.timestamp(), OLD.timestamp()))
    with Store(":memory:") as store:
        job = RetentionJob(store, retention_days=30, evidence_dir=evidence, clock=lambda: NOW)
        assert job.run_once().images_deleted == 1
    assert not old_frame.exists() and new_frame.exists()


def test_confirmed_events_past_history_are_deleted_in_bounded_batches() -> None:
    clock = Clock(NOW - timedelta(days=100))
    with Store(":memory:", clock=clock) as store:
        old_confirmed = [store.journal(denied(f"C{i}", clock.now, image=False)) for i in range(5)]
        old_unconfirmed = store.journal(denied("U1", clock.now, image=False))
        store.mark_confirmed(old_confirmed)
        recent = store.journal(denied("R1", NOW - timedelta(days=10), image=False))
        store.mark_confirmed([recent])
        assert store.trim_events(NOW - timedelta(days=90), batch=2) == 5  # three commits
        assert {e.event_id for e in store.events(10)} == {old_unconfirmed, recent}
        clock.now = NOW
        job = RetentionJob(store, retention_days=30, history_days=90, clock=clock)
        assert job.run_once().events_trimmed == 0
        store.mark_confirmed([old_unconfirmed])  # the cloud finally has it: now it can go
        assert job.run_once().events_trimmed == 1
        assert [e.event_id for e in store.events(10)] == [recent]


def test_dead_letters_older_than_retention_are_dropped(tmp_path: Path) -> None:
    letters = DeadLetters(tmp_path / DEAD_LETTERS_FILE)
    letters.add("mqtt:reservations", "bad plate", b'{"plate": "AB123"}')
    letters.add("http:changes", "not json", b"<html>")
    rotated = tmp_path / (DEAD_LETTERS_FILE + ".1")
    rotated.write_text(letters.path.read_text().splitlines()[0] + "\n")
    lines = letters.path.read_text().splitlines()
    aged = json.loads(lines[0]) | {"at": OLD.isoformat()}
    letters.path.write_text(json.dumps(aged) + "\n" + lines[1] + "\n")
    older_than = datetime.now(UTC) - timedelta(days=30)
    assert letters.trim(older_than) == 1
    assert [e["source"] for e in letters.read()] == ["http:changes"]
    assert rotated.exists()  # its entry is recent

    a_year_on = datetime.now(UTC) + timedelta(days=365)
    with Store(":memory:") as store:
        job = RetentionJob(store, retention_days=30, dead_letters=letters, clock=lambda: a_year_on)
        assert job.run_once().dead_letters_trimmed == 2  # the rest
    assert letters.read() == [] and not rotated.exists()


class FailingStore:
    """A store whose purge fails ``failures`` times (then works), with a chosen error."""

    def __init__(self, store: Store, errors: list[Exception]) -> None:
        self._store = store
        self._errors = errors

    def purge_reads(self, older_than: datetime) -> int:
        if self._errors:
            raise self._errors.pop(0)
        return self._store.purge_reads(older_than)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_the_retention_thread_survives_any_error_and_reports_it() -> None:
    with Store(":memory:") as real:
        errors: list[Exception] = [
            sqlite3.OperationalError("database is locked"),
            RuntimeError("a bug"),
        ]
        store = cast(Store, FailingStore(real, errors))
        job = RetentionJob(store, retention_days=30, interval=0.01).start()
        try:
            wait_for(lambda: job.health.runs >= 1, timeout=10, what="a run after two failures")
            assert job.running
            assert job.health.failures == 2
            assert job.health.last_error == "RuntimeError: a bug"
            assert job.health.last_success_at is not None
        finally:
            job.stop()


def test_images_older_than_retention_go_even_without_keep_images(tmp_path: Path) -> None:
    with Store(":memory:") as store:
        ancient = denied("X1", OLD)
        path = keep_image(tmp_path, ancient, mtime=OLD)
        job = RetentionJob(store, retention_days=30, image_dir=tmp_path, clock=lambda: NOW)
        assert job.run_once() == RetentionRun(images_deleted=1)
        assert not path.exists()


def test_the_agent_runs_the_retention_job_and_reports_its_health(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.jpg"), np.zeros((32, 32, 3), dtype=np.uint8))
    data = tmp_path / "data"
    old_image = data / "images" / "old.jpg"
    old_image.parent.mkdir(parents=True)
    old_image.write_bytes(b"x")
    aged = (datetime.now(UTC) - timedelta(days=31)).timestamp()
    os.utime(old_image, (aged, aged))
    config = parse_config(
        {
            "lot": {"id": "lot-r", "data_dir": str(data)},
            "web": {"enabled": False},
            "privacy": {"retention_days": 30},
            "lanes": [
                {
                    "id": "entry-1",
                    "direction": "entry",
                    "camera": {"kind": "replay", "path": str(frames), "fps": 5},
                    "barrier": {"kind": "dry-run"},
                }
            ],
        }
    )
    agent = build_agent(config, recognizer=Recognizer(NoPlates())).start()
    try:
        assert agent.retention is not None
        wait_for(lambda: not old_image.exists(), timeout=10, what="the first retention run")
        wait_for(lambda: agent.retention.health.runs >= 1, timeout=10, what="the run's health")
        metrics = agent.metrics.render().decode()
        assert "parkgate_retention_failures_total 0.0" in metrics
        agent.retention.store = cast(Store, FailingStore(agent.store, [OSError("disk full")]))
        assert agent.retention.run_guarded() is None
        metrics = agent.metrics.render().decode()
        assert "parkgate_retention_failures_total 1.0" in metrics
        assert "parkgate_retention_last_success_age_seconds" in metrics
    finally:
        agent.stop()
    assert agent.retention is None


def test_hash_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    key = load_hash_key(tmp_path)
    path = tmp_path / HASH_KEY_FILE
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_hash_key(tmp_path) == key


def test_keyed_hash_is_stable_normalised_truncated_and_per_lot() -> None:
    lot_a = keyed_plate_hasher(b"a" * 32)
    lot_b = keyed_plate_hasher(b"b" * 32)
    digest = lot_a("AB12C")
    assert digest.startswith("h:") and len(digest) == 2 + 16
    assert lot_a("ab-12 c") == digest  # normalised first
    assert lot_a(digest) == digest  # hashing twice changes nothing
    assert lot_b("AB12C") != digest


def test_hash_plates_journal_keeps_hashes_and_search_still_finds_them(tmp_path: Path) -> None:
    hasher = keyed_plate_hasher(load_hash_key(tmp_path))
    with Store(tmp_path / "agent.sqlite3", plate_hasher=hasher) as store:
        store.journal(denied("AB12C", NOW, image=False))
        [event] = store.events(5)
        assert event.plate == hasher("AB12C") != "AB12C"
        assert event.read_text == hasher("AB12C")
        assert [e.event_id for e in store.events(5, plate="ab 12c")] == [event.event_id]


def test_agent_with_hash_plates_uses_the_lot_key(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.jpg"), np.zeros((32, 32, 3), dtype=np.uint8))
    config = parse_config(
        {
            "lot": {"id": "lot-h", "data_dir": str(tmp_path / "data")},
            "web": {"enabled": False},
            "privacy": {"hash_plates": True},
            "lanes": [
                {
                    "id": "entry-1",
                    "direction": "entry",
                    "camera": {"kind": "replay", "path": str(frames)},
                    "barrier": {"kind": "dry-run"},
                }
            ],
        }
    )
    agent = build_agent(config, recognizer=Recognizer(NoPlates()))
    try:
        agent.store.journal(denied("ZZ999", NOW, image=False))
        [event] = agent.store.events(1)
    finally:
        agent.stop()
    key = (tmp_path / "data" / HASH_KEY_FILE).read_bytes()
    assert event.plate == keyed_plate_hasher(key)("ZZ999")


def test_a_manual_open_saves_no_frame_unless_the_lot_asks_for_them(
    tmp_path: Path, dataset_dir: Path, recognizer: Recognizer, pins: MockFactory
) -> None:
    config = web_agent_config(
        tmp_path, camera_folder(tmp_path, dataset_dir), hash_password(PASSWORD)
    )
    del config["privacy"]  # the defaults: keep_images and manual_open_frames false
    agent = build_agent(parse_config(config), recognizer=recognizer, pin_factory=pins)
    try:
        wait_for(lambda: agent.lanes[LANE].source.latest() is not None, timeout=10, what="a frame")
        with TestClient(create_web_app(agent, agent.config.web), follow_redirects=False) as web:
            assert login(web).status_code == 303
            token = csrf_of(web.get("/").text)
            opened = web.post(f"/lanes/{LANE}/open", data={"reason": "taxi", "csrf": token})
        assert opened.status_code == 200
        assert len(agent.store.events(kind=EventKind.MANUAL_OPEN)) == 1  # journaled and audited
        assert agent.store.audit_log()[0].action == "manual_open"
        assert not (Path(agent.config.lot.data_dir) / EVIDENCE_SUBDIR).exists()
    finally:
        agent.stop()
