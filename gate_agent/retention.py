"""Privacy at the edge: the retention job and the keyed plate hash.

**Retention.** :class:`RetentionJob` runs in a daemon thread of the agent. Once an hour (and once at
start) it asks the store to blank the plate text and image path of journal events older than
``privacy.retention_days`` *that the cloud has confirmed* (an ``EventAck``; an unconfirmed event
keeps its plate, even when the broker accepted it), then deletes kept evidence images: the image
of every event it can see was purged, and any image file older than the retention period
whatever its event says.

**Hashed plates.** With ``privacy.hash_plates = true`` the journal stores
``h:`` + the first 16 hex digits (64 bits) of HMAC-SHA256(key, normalised plate) instead of the
plate (:func:`keyed_plate_hasher`). The key is 32 random bytes made on first start in
``<data_dir>/plate-hash.key`` (mode 0600) and never leaves the lot, so a hash cannot be reversed
by hashing every possible plate without that file; 64 bits keep accidental collisions between the
plates one lot sees negligible. What this means:

- Matching is unaffected: reads are matched in memory against the reservation cache, and the
  presence table (who is inside, for anti-passback) keeps the real plate until the car leaves.
- The status page shows hashes in the event list; searching events by plate and "why was this
  plate denied" still work (the typed plate is hashed the same way), but only exactly, not fuzzily.
- Events sent to the cloud carry the hash; the cloud links them to bookings by reservation id, so
  a car that opened nothing (denied, unknown) cannot be identified by the cloud. Each lot has its
  own key, so the same car has different hashes at different lots.
- Losing the key file (a new SD card) only means new hashes stop matching old journal rows.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gate_agent import plates
from gate_agent.store import Store

__all__ = ["HASH_KEY_FILE", "RetentionJob", "keyed_plate_hasher", "load_hash_key"]

log = logging.getLogger(__name__)

HASH_KEY_FILE = "plate-hash.key"
HASH_PREFIX = "h:"
HASH_HEX_DIGITS = 16
PURGE_INTERVAL_SECONDS = 3600.0
IMAGES_SUBDIR = "images"  # the lane writes evidence to <image_dir>/images/<event_id>.jpg
SCAN_LIMIT = 100_000  # purged events looked at per run for their images


def load_hash_key(data_dir: Path) -> bytes:
    """The lot's plate-hash key, created (32 random bytes, mode 0600) when missing."""
    path = data_dir / HASH_KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        log.info("created the plate-hash key %s", path)
        return key
    if len(key) < 16:
        raise ValueError(f"{path} is too short to be a plate-hash key; remove it to make a new one")
    return key


def keyed_plate_hasher(key: bytes) -> Callable[[str], str]:
    """``plate → "h:" + 16 hex digits`` of HMAC-SHA256 over the normalised plate."""

    def hash_plate(plate: str) -> str:
        if plate.startswith(HASH_PREFIX):
            return plate  # already hashed (a retried write)
        digest = hmac.new(key, plates.normalise(plate).encode("utf-8"), hashlib.sha256)
        return HASH_PREFIX + digest.hexdigest()[:HASH_HEX_DIGITS]

    return hash_plate


def utcnow() -> datetime:
    return datetime.now(UTC)


class RetentionJob:
    """Purges plate reads and evidence images past retention; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        retention_days: int,
        image_dir: Path | None = None,
        interval: float = PURGE_INTERVAL_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.retention = timedelta(days=retention_days)
        self.image_dir = image_dir
        self.interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionJob:
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except (OSError, ValueError) as exc:  # sqlite3.Error is neither; it would be a bug
                log.error("retention run failed (retrying in %.0f s): %s", self.interval, exc)
            self._stop.wait(self.interval)

    def run_once(self) -> tuple[int, int]:
        """One purge now: (events blanked, images deleted)."""
        cutoff = self._clock() - self.retention
        doomed = self._images_of_purgeable_events(cutoff)
        purged = self.store.purge_reads(cutoff)
        deleted = self._delete_images(doomed, cutoff)
        if purged or deleted:
            log.info(
                "retention: blanked %d event(s), deleted %d image(s) older than %s",
                purged,
                deleted,
                cutoff.isoformat(timespec="seconds"),
            )
        return purged, deleted

    def _images_of_purgeable_events(self, cutoff: datetime) -> set[str]:
        """Image paths of confirmed events before ``cutoff`` (purge_reads will blank them)."""
        if self.image_dir is None:
            return set()
        events = self.store.events(SCAN_LIMIT, until=cutoff)
        return {e.image_path for e in events if e.image_path and e.confirmed_at is not None}

    def _delete_images(self, doomed: set[str], cutoff: datetime) -> int:
        if self.image_dir is None:
            return 0
        folder = self.image_dir / IMAGES_SUBDIR
        if not folder.is_dir():
            return 0
        oldest_kept = cutoff.timestamp()
        deleted = 0
        for path in folder.glob("*.jpg"):
            relative = f"{IMAGES_SUBDIR}/{path.name}"
            try:
                if relative in doomed or path.stat().st_mtime < oldest_kept:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue  # removed meanwhile
        return deleted
