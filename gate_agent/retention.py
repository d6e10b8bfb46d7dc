"""Privacy at the edge: the retention job and the keyed plate hash.

**Retention.** :class:`RetentionJob` runs in a daemon thread of the agent. Once an hour (and once at
start) it

1. blanks the plate text and image path of every journal event older than
   ``privacy.retention_days``, *confirmed by the cloud or not*: an offline lot keeps no plate past
   retention. An unconfirmed event stays in the outbox and is still sent exactly as before (same
   ``event_id``, so the cloud still deduplicates it), only without its plate; the cloud links
   events to bookings by reservation id. Plates in audit details (presence resets) go too;
2. deletes evidence images: kept event images (``<image_dir>/images``) of the events it blanked,
   and any kept image or manual-open frame (``<data_dir>/evidence``) older than the retention
   period;
3. deletes journal events the cloud confirmed that are older than ``privacy.event_history_days``
   (an unconfirmed event is never deleted), a bounded batch per commit;
4. drops dead letters older than the retention period (they can hold plates);
5. deletes operator audit entries older than ``privacy.audit_history_days`` (their plates went at
   step 1), a bounded batch per commit.

A failing run (a locked or corrupt database, a full disk, a bug) is logged with its traceback,
counted in :attr:`RetentionJob.health` (and ``/metrics``), and retried at the next interval: the
thread never dies of it.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from gate_agent import plates
from gate_agent.store import Store

__all__ = [
    "EVIDENCE_SUBDIR",
    "HASH_KEY_FILE",
    "RetentionHealth",
    "RetentionJob",
    "RetentionRun",
    "Trimmable",
    "keyed_plate_hasher",
    "load_hash_key",
]

log = logging.getLogger(__name__)

HASH_KEY_FILE = "plate-hash.key"
HASH_PREFIX = "h:"
HASH_HEX_DIGITS = 16
PURGE_INTERVAL_SECONDS = 3600.0
IMAGES_SUBDIR = "images"  # the lane writes evidence to <image_dir>/images/<event_id>.jpg
EVIDENCE_SUBDIR = "evidence"  # manual-open frames: <data_dir>/evidence/<event_id>.jpg
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


class Trimmable(Protocol):
    """Something kept by age that the job trims (the sync client's dead letters)."""

    def trim(self, older_than: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """What one run did."""

    blanked: int = 0  # events whose plate text and image path were blanked
    images_deleted: int = 0  # kept event images and manual-open frames deleted
    events_trimmed: int = 0  # confirmed events deleted past the history period
    dead_letters_trimmed: int = 0
    audit_trimmed: int = 0  # operator audit entries deleted past their history period


@dataclass(slots=True)
class RetentionHealth:
    """How the job is doing, for the status page and ``/metrics``."""

    runs: int = 0  # runs that completed
    failures: int = 0  # runs that raised (each logged with its traceback)
    last_success_at: datetime | None = None
    last_error: str | None = None  # the newest failure, "ExceptionType: message"
    last_error_at: datetime | None = None


class RetentionJob:
    """Purges plate reads, evidence images and old history; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        retention_days: int,
        history_days: int | None = None,
        audit_days: int | None = None,
        image_dir: Path | None = None,
        evidence_dir: Path | None = None,
        dead_letters: Trimmable | None = None,
        interval: float = PURGE_INTERVAL_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.retention = timedelta(days=retention_days)
        self.history = None if history_days is None else timedelta(days=history_days)
        self.audit_history = None if audit_days is None else timedelta(days=audit_days)
        self.image_dir = image_dir
        self.evidence_dir = evidence_dir
        self.dead_letters = dead_letters
        self.interval = interval
        self.health = RetentionHealth()
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

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_guarded()
            self._stop.wait(self.interval)

    def run_guarded(self) -> RetentionRun | None:
        """One run that never raises: a failure is logged, counted and kept in :attr:`health`."""
        try:
            done = self.run_once()
        except Exception as exc:  # the job must outlive any failure; it retries next interval
            self.health.failures += 1
            self.health.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self.health.last_error_at = self._clock()
            log.exception(
                "retention run failed (%d failure(s) so far; retrying in %.0f s)",
                self.health.failures,
                self.interval,
            )
            return None
        self.health.runs += 1
        self.health.last_success_at = self._clock()
        return done

    def run_once(self) -> RetentionRun:
        """One purge now, privacy first (plates, then images, then history)."""
        now = self._clock()
        cutoff = now - self.retention
        doomed = self._images_of_purgeable_events(cutoff)
        blanked = self.store.purge_reads(cutoff)
        deleted = self._delete_images(doomed, cutoff)
        trimmed = 0 if self.history is None else self.store.trim_events(now - self.history)
        letters = 0 if self.dead_letters is None else self.dead_letters.trim(cutoff)
        audits = (
            0 if self.audit_history is None else self.store.trim_audit(now - self.audit_history)
        )
        done = RetentionRun(blanked, deleted, trimmed, letters, audits)
        if blanked or deleted or trimmed or letters or audits:
            log.info(
                "retention: blanked %d event(s), deleted %d image(s) older than %s; "
                "deleted %d confirmed event(s) past history; dropped %d dead letter(s) "
                "and %d audit entr(ies)",
                blanked,
                deleted,
                cutoff.isoformat(timespec="seconds"),
                trimmed,
                letters,
                audits,
            )
        return done

    def _images_of_purgeable_events(self, cutoff: datetime) -> set[str]:
        """Image paths of the events before ``cutoff`` that purge_reads will blank."""
        if self.image_dir is None:
            return set()
        events = self.store.events(SCAN_LIMIT, until=cutoff)
        return {e.image_path for e in events if e.image_path}

    def _delete_images(self, doomed: set[str], cutoff: datetime) -> int:
        deleted = 0
        if self.image_dir is not None:
            deleted += _delete_old(self.image_dir / IMAGES_SUBDIR, cutoff, doomed, IMAGES_SUBDIR)
        if self.evidence_dir is not None:
            deleted += _delete_old(self.evidence_dir, cutoff, set(), "")
        return deleted


def _delete_old(folder: Path, cutoff: datetime, doomed: set[str], prefix: str) -> int:
    """Delete the ``*.jpg`` in ``folder`` modified before ``cutoff`` or named in ``doomed``
    (as ``<prefix>/<name>``)."""
    if not folder.is_dir():
        return 0
    oldest_kept = cutoff.timestamp()
    deleted = 0
    for path in folder.glob("*.jpg"):
        try:
            if f"{prefix}/{path.name}" in doomed or path.stat().st_mtime < oldest_kept:
                path.unlink()
                deleted += 1
        except FileNotFoundError:
            continue  # removed meanwhile
    return deleted
