"""Bytes the agent writes to its SD card per lane pass (issue 14, finding 11).

Each booked car of the shared dataset drives in through an entry lane and out through an exit
lane: two passes, each the real path (frame → recognition → decision → barrier → fsync'd journal
commit with its presence change), and each event then goes through the real outbox
(:class:`~gate_agent.sync._outbox.OutboxPublisher`): published, its PUBACK recorded
(``mark_sent``, in memory), the cloud's ``EventAck`` recorded (``mark_confirmed``: written with
the store's next commit), one event at a time, as at a quiet lot. The broker is an in-process
stand-in that acknowledges at once: its own disk writes are Mosquitto's, not the agent's. It
runs twice: on a new store, and on one with ``HISTORY_EVENTS`` confirmed past passes and
``CARS_INSIDE`` cars parked (bigger indexes: where a random insert would cost most).

Bytes come from ``/proc/self/io`` ``write_bytes`` (what this process sent to the block layer,
every thread included) over the measured window, which ends with a forced WAL checkpoint so the
database file's share is counted too (the setup's reservation load is checkpointed before the
window opens). The bytes of each step (the lane's journal commit, the PUBACK, the EventAck, the
final checkpoint) are printed beside the total to show where they go (an automatic checkpoint
lands in the commit that triggered it). Log lines (INFO and above, what journald would get) are
counted separately: journald writes them, not this process.

Target: ≤ 12 KB per pass, so 2,000 cars a day (4,000 passes) stay ≤ 50 MB a day.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.dataset import load_samples
from bench.lane import _booking, _filler, make_lane
from gate_agent.domain import Direction, EventKind, JournalEvent, Reservation
from gate_agent.lane import Lane
from gate_agent.passes import PassTracker
from gate_agent.plates import normalise
from gate_agent.recognition import Recognizer, load_image, models_dir_from_env
from gate_agent.store import PresenceChange, Store
from gate_agent.store import _journal as journal_sql
from gate_agent.sync._outbox import OutboxPublisher
from hardware.barrier import DryRunBarrier
from hardware.camera import Frame

TARGET_BYTES_PER_PASS = 12 * 1024
CARS_PER_DAY = 2000
HISTORY_EVENTS = 50_000  # a lot some way in: about 12 days of passes at 2,000 cars a day
CARS_INSIDE = 300
_REPO = Path(__file__).resolve().parent.parent


def write_bytes() -> int:
    """This process's ``write_bytes`` so far (all threads)."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no write_bytes (task I/O accounting is off)")


class LogBytes(logging.Handler):
    """Counts the bytes of the log lines the agent emits at INFO and above."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.total = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.total += len(self.format(record)) + 1


@dataclass
class Broker:
    """Acknowledges every publish at once (PUBACK, then the cloud's EventAck)."""

    outbox: OutboxPublisher | None = None
    mids: Iterator[int] = field(default_factory=lambda: iter(range(1, 1 << 30)))
    published: list[bytes] = field(default_factory=list)

    def publish(self, payload: bytes) -> int:
        self.published.append(payload)
        return next(self.mids)


def _checkpoint(db: Path) -> None:
    """A full checkpoint from this process (counted: it is the agent's own periodic work)."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()


STEPS = ("journal", "sent", "ack", "checkpoint")


@dataclass
class Tally:
    passes: int = 0
    opened: int = 0
    steps: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        before = write_bytes()
        yield
        self.steps[name] += write_bytes() - before


def _drive(store: Store, lanes: list[Lane], images: list[np.ndarray], tally: Tally) -> None:
    broker = Broker()
    outbox = OutboxPublisher(store, broker.publish, window=1)
    for seq, image in enumerate(images):
        for lane in lanes:
            lane.tracker = PassTracker()  # every photo is one arrival at each lane
            frame = Frame(image=image, seq=seq, captured_at=time.monotonic(), wall_time=time.time())
            with tally.step("journal"):
                outcome = lane.process_frame(frame)
            if outcome is None:
                continue
            tally.passes += 1
            tally.opened += outcome.decision.open
            outbox.pump(connected=True)  # published
            with tally.step("sent"):
                outbox.acknowledged(len(broker.published), True)
                outbox.pump(connected=True)  # PUBACK → mark_sent
            with tally.step("ack"):
                outbox.confirmed([outcome.event_id])
                outbox.pump(connected=True)  # EventAck → mark_confirmed


@contextmanager
def _counted_logs() -> Iterator[LogBytes]:
    handler = LogBytes()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@dataclass
class Result:
    page_size: int
    written: int
    grown: int
    log_bytes: int
    tally: Tally


def _seed_history(store: Store, events: int, inside: int) -> None:
    """``events`` past passes, all confirmed, the last ``inside`` of them cars still parked, in
    one transaction (a bench fixture through the store's private journal verbs: the agent
    journals one pass per commit, far too slow to build twelve days of history)."""
    now = datetime.now(UTC)
    with store._db.write() as conn:
        for n in range(events):
            event = JournalEvent(
                lot_id="bench",
                kind=EventKind.ENTRY,
                lane_id=Direction.ENTRY.value,
                direction=Direction.ENTRY,
                visit_id=f"history{n}",
                plate=f"HIST{n:06d}",
                read_text=f"HIST{n:06d}",
                confidence=0.9,
                reason="reservation_valid",
                reservation_id=f"history{n}",
                occurred_at=now - timedelta(seconds=20 * (events - n)),
            )
            presence: PresenceChange = "enter" if n >= events - inside else "none"
            journal_sql.insert_event(conn, event, presence, now, str)
        conn.execute("UPDATE events SET confirmed_at = occurred_at, sent_at = occurred_at")


def measure(
    recognizer: Recognizer,
    images: list[np.ndarray],
    bookings: list[Reservation],
    history: int = 0,
) -> Result:
    """Run every image through an entry then an exit lane; bytes written per pass and more.
    ``history``: journal that many confirmed past passes first (and park ``CARS_INSIDE`` cars),
    so the indexes are the size of a lot that has run for a while."""
    with tempfile.TemporaryDirectory(dir=_REPO) as tmp:  # the repository's disk, not a tmpfs
        db = Path(tmp) / "agent.sqlite3"
        store = Store(db)
        try:
            store.upsert_reservations([*_filler(10_000), *bookings])
            if history:
                _seed_history(store, history, CARS_INSIDE)
            barrier = DryRunBarrier(pulse_seconds=0.05)
            lanes = [  # what the journal writes, not the code reader (it writes nothing)
                make_lane(recognizer, store, barrier, d, read_codes=False)
                for d in (Direction.ENTRY, Direction.EXIT)
            ]
            _checkpoint(db)
            tally = Tally()
            size_before = db.stat().st_size
            with _counted_logs() as logs:
                started = write_bytes()
                _drive(store, lanes, images, tally)
                with tally.step("checkpoint"):
                    _checkpoint(db)
                written = write_bytes() - started
            grown = db.stat().st_size - size_before
        finally:
            store.close()
        with sqlite3.connect(db) as conn:
            used = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return Result(used, written, grown, logs.total, tally)


def run() -> list[str]:
    samples = load_samples()
    models_dir = models_dir_from_env() or _REPO.parent / "shared" / "models"
    recognizer = Recognizer.from_models(models_dir, threads=2)
    now = datetime.now(UTC)
    bookings = [_booking(f"bk{i}", normalise(s.plate), now) for i, s in enumerate(samples)]
    images = [load_image(s.image) for s in samples]
    recognizer.read(images[0])  # warm-up
    lines = _lines(measure(recognizer, images, bookings), len(images), len(bookings))
    seasoned = measure(recognizer, images, bookings, history=HISTORY_EVENTS)
    lines += [
        f"a lot with history ({HISTORY_EVENTS:,} confirmed events, {CARS_INSIDE} cars inside):",
        *(f"  {line.strip()}" for line in _lines(seasoned, len(images), len(bookings))[1:4]),
    ]
    return lines


def _lines(result: Result, cars: int, bookings: int) -> list[str]:
    tally = result.tally
    passes = max(tally.passes, 1)
    per_pass = result.written / passes
    per_day = per_pass * 2 * CARS_PER_DAY
    steps = ", ".join(f"{name} {n / passes / 1024:.1f} KB" for name, n in tally.steps.items())
    verdict = "PASS" if per_pass <= TARGET_BYTES_PER_PASS else "FAIL"
    return [
        f"passes {tally.passes} ({tally.opened} opened) of {cars} cars in and out; "
        f"page size {result.page_size} B; 10,000 + {bookings} reservations cached",
        f"written per pass {per_pass / 1024:.1f} KB (WAL + checkpoint, /proc/self/io)"
        f"   target ≤ {TARGET_BYTES_PER_PASS // 1024} KB  {verdict}",
        f"  → {CARS_PER_DAY:,} cars a day (2 passes each): {per_day / 1e6:.1f} MB a day",
        f"  per pass by step: {steps}",
        f"  database file grew {result.grown / passes:.0f} B per pass (rows and indexes)",
        f"  log lines at INFO+ (journald's writes, not counted above): "
        f"{result.log_bytes / passes:.0f} B per pass",
    ]


if __name__ == "__main__":
    for line in run():
        print(line)
