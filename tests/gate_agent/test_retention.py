"""Privacy: plate reads and evidence images purged after retention; plates hashed with a lot key."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from devservices import wait_for
from gate_agent.app import build_agent
from gate_agent.config import parse_config
from gate_agent.domain import EventKind, JournalEvent
from gate_agent.recognition import Recognizer
from gate_agent.retention import (
    HASH_KEY_FILE,
    RetentionJob,
    keyed_plate_hasher,
    load_hash_key,
)
from gate_agent.store import Store


class NoPlates:
    def predict(self, frame: np.ndarray) -> list[object]:
        return []


NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)


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


def test_purge_blanks_sent_reads_and_deletes_their_images(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.sqlite3", clock=lambda: NOW) as store:
        old_sent = denied("OLD1", OLD)
        old_unsent = denied("OLD2", OLD)
        recent_sent = denied("NEW1", NOW - timedelta(days=1))
        for event in (old_sent, old_unsent, recent_sent):
            store.journal(event)
        store.mark_confirmed([old_sent.event_id, recent_sent.event_id])
        # fresh files on disk: the purged event's image goes because its event was purged
        old_sent_image = keep_image(tmp_path, old_sent)
        old_unsent_image = keep_image(tmp_path, old_unsent)  # recent mtime, unsent: kept
        recent_image = keep_image(tmp_path, recent_sent)
        orphan = tmp_path / "images" / "orphan.jpg"
        orphan.write_bytes(b"x")
        os.utime(orphan, (OLD.timestamp(), OLD.timestamp()))  # older than retention: deleted

        job = RetentionJob(store, retention_days=30, image_dir=tmp_path, clock=lambda: NOW)
        assert job.run_once() == (1, 2)

        by_id = {e.event_id: e for e in store.events(10)}
        assert by_id[old_sent.event_id].plate is None
        assert by_id[old_sent.event_id].read_text is None
        assert by_id[old_sent.event_id].image_path is None
        assert by_id[old_unsent.event_id].plate == "OLD2"  # the cloud still needs it
        assert by_id[recent_sent.event_id].plate == "NEW1"
        assert not old_sent_image.exists()
        assert not orphan.exists()
        assert old_unsent_image.exists() and recent_image.exists()
        assert job.run_once() == (0, 0)  # idempotent


def test_images_older_than_retention_go_even_without_keep_images(tmp_path: Path) -> None:
    with Store(":memory:") as store:
        ancient = denied("X1", OLD)
        path = keep_image(tmp_path, ancient, mtime=OLD)
        job = RetentionJob(store, retention_days=30, image_dir=tmp_path, clock=lambda: NOW)
        assert job.run_once() == (0, 1)
        assert not path.exists()


def test_the_agent_runs_the_retention_job(tmp_path: Path) -> None:
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
