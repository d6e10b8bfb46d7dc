"""The gate agent's SQLite schema, as sqlite-utils migrations recorded in ``_sqlite_migrations``.

Private to :mod:`gate_agent.store`. Add a migration by appending a decorated function; never edit
one that has shipped. Applying is idempotent: reopening a store applies only what is pending.

Times are UTC ISO-8601 text with microseconds (``2026-03-02T12:00:00.000000+00:00``), so text
order is time order. ``plate_keys`` is the deletion-neighbourhood index of every cached plate
(reservations and list entries): ``plates.index_keys(plate)`` rows, one per key, clustered on
``(key, plate)`` so a lookup reads the plates straight from the index. ``reservations`` is
clustered on ``(plate, id)`` for the same reason: a plate's reservations are one B-tree seek
(measured ~6 µs p50 faster per hit at 1M rows than a rowid table with a plate index).
"""

from __future__ import annotations

import re

from sqlite_utils import Database, Migrations

from gate_agent import plates

__all__ = ["MIGRATIONS", "apply_migrations"]

MIGRATIONS = Migrations("gate_agent.store")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    for sql in _INITIAL:
        db.execute(sql)


_INITIAL = (
    """CREATE TABLE reservations (
        plate TEXT NOT NULL,
        id TEXT NOT NULL UNIQUE,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        status TEXT NOT NULL,
        amount_owed_cents INTEGER NOT NULL DEFAULT 0,
        currency TEXT NOT NULL DEFAULT 'EUR',
        space_label TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (plate, id)
    ) WITHOUT ROWID""",
    """CREATE TABLE plate_keys (
        key TEXT NOT NULL,
        plate TEXT NOT NULL,
        PRIMARY KEY (key, plate)
    ) WITHOUT ROWID""",
    """CREATE TABLE list_entries (
        plate TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('allow', 'deny')),
        valid_from TEXT,
        valid_until TEXT,
        note TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        PRIMARY KEY (plate, kind)
    )""",
    """CREATE TABLE presence (
        plate TEXT PRIMARY KEY,
        visit_id TEXT NOT NULL,
        entered_at TEXT NOT NULL,
        reservation_id TEXT
    )""",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        lot_id TEXT NOT NULL,
        lane_id TEXT,
        direction TEXT,
        kind TEXT NOT NULL,
        visit_id TEXT,
        plate TEXT,
        read_text TEXT,
        confidence REAL,
        reason TEXT,
        reservation_id TEXT,
        fuzzy INTEGER NOT NULL DEFAULT 0,
        amount_owed_cents INTEGER NOT NULL DEFAULT 0,
        currency TEXT NOT NULL DEFAULT 'EUR',
        occurred_at TEXT NOT NULL,
        image_path TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        sent_at TEXT
    )""",
    "CREATE INDEX events_unsent ON events(seq) WHERE sent_at IS NULL",
    "CREATE INDEX events_plate ON events(plate)",
    "CREATE INDEX events_occurred ON events(occurred_at)",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT NOT NULL,
        lane_id TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


@MIGRATIONS(name="0002_event_confirmed_at")
def _event_confirmed_at(db: Database) -> None:
    """``confirmed_at``: the cloud stored the event (its ``EventAck``), not just the broker's
    PUBACK (``sent_at``). Events sent before this migration count as confirmed (that was the
    rule when they were sent; re-publishing a whole history would flood the cloud)."""
    db.execute("ALTER TABLE events ADD COLUMN confirmed_at TEXT")
    db.execute("UPDATE events SET confirmed_at = sent_at WHERE sent_at IS NOT NULL")
    db.execute("CREATE INDEX events_unconfirmed ON events(seq) WHERE confirmed_at IS NULL")


@MIGRATIONS(name="0003_policy_and_access_lists")
def _policy_and_access_lists(db: Database) -> None:
    """The lot's cloud policy (the one in force and the last one refused, with why) and list
    entries keyed by the cloud's ``entry_id`` (several per plate: other windows, lanes) with a
    category and the lanes they apply to. An entry without an id is keyed ``plate:KIND:PLATE``
    as before, which is what the entries already cached become. Clustered on ``(plate,
    entry_key)`` so a plate's entries are one B-tree seek, as for reservations."""
    for sql in _POLICY_AND_LISTS:
        db.execute(sql)


_POLICY_AND_LISTS = (
    """CREATE TABLE lot_policy (
        slot TEXT PRIMARY KEY CHECK (slot IN ('in_force', 'rejected')),
        version INTEGER,
        body TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT
    )""",
    """CREATE TABLE access_entries (
        plate TEXT NOT NULL,
        entry_key TEXT NOT NULL UNIQUE,
        entry_id TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('allow', 'deny')),
        category TEXT,
        valid_from TEXT,
        valid_until TEXT,
        note TEXT NOT NULL DEFAULT '',
        lanes TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (plate, entry_key)
    ) WITHOUT ROWID""",
    """INSERT INTO access_entries (plate, entry_key, kind, valid_from, valid_until, note,
                                   updated_at)
       SELECT plate, 'plate:' || kind || ':' || plate, kind, valid_from, valid_until, note,
              updated_at
       FROM list_entries ORDER BY plate, kind""",
    "DROP TABLE list_entries",
    "ALTER TABLE access_entries RENAME TO list_entries",
)


@MIGRATIONS(name="0004_one_outbox_index")
def _one_outbox_index(db: Database) -> None:
    """The outbox reads ``confirmed_at IS NULL AND sent_at IS NULL`` from ``events_unconfirmed``
    (an unsent event is never confirmed: a confirmation also sets ``sent_at``), so
    ``events_unsent`` goes: a journal commit and a PUBACK's commit each write one 4 KB page less
    to the SD card (``python -m bench disk_writes``)."""
    db.execute("DROP INDEX events_unsent")


@MIGRATIONS(name="0005_operator_sessions")
def _operator_sessions(db: Database) -> None:
    """Server-side operator sessions (revoked on logout) and the login throttle's counters, per
    (username, client address); see :mod:`gate_agent.store._operators`."""
    for sql in _OPERATOR_SESSIONS:
        db.execute(sql)


_OPERATOR_SESSIONS = (
    """CREATE TABLE web_sessions (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX web_sessions_expiry ON web_sessions(expires_at)",
    """CREATE TABLE login_attempts (
        username TEXT NOT NULL,
        address TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        window_start TEXT NOT NULL,
        PRIMARY KEY (username, address)
    ) WITHOUT ROWID""",
    "CREATE INDEX login_attempts_window ON login_attempts(window_start)",
)


@MIGRATIONS(name="0006_stays")
def _stays(db: Database) -> None:
    """Stays: presence records the kind of stay a car inside is on (``booking``, ``drive_up``,
    ``permit``; a car recorded without a reservation was let in by a list or by hand, so it
    becomes ``permit``); ``stay_payments`` keeps what the cloud says each stay has paid, by the
    stay's id (the entry pass's visit id); events carry their ``stay_id``. A plate inside is
    indexed like a cached one (a drive-up visitor has no reservation to be found by)."""
    for sql in _STAYS:
        db.execute(sql)
    inside = [row[0] for row in db.execute("SELECT plate FROM presence")]
    db.conn.executemany(
        "INSERT OR IGNORE INTO plate_keys (key, plate) VALUES (?, ?)",
        sorted({(key, plate) for plate in inside for key in plates.index_keys(plate)}),
    )


_STAYS = (
    "ALTER TABLE presence ADD COLUMN kind TEXT NOT NULL DEFAULT 'booking'"
    " CHECK (kind IN ('booking', 'drive_up', 'permit'))",
    "UPDATE presence SET kind = 'permit' WHERE reservation_id IS NULL",
    """CREATE TABLE stay_payments (
        stay_id TEXT PRIMARY KEY,
        plate TEXT NOT NULL,
        paid_cents INTEGER NOT NULL CHECK (paid_cents >= 0),
        paid_through TEXT NOT NULL,
        currency TEXT NOT NULL,
        payment_id TEXT,
        updated_at TEXT NOT NULL
    )""",
    "ALTER TABLE events ADD COLUMN stay_id TEXT",
)


@MIGRATIONS(name="0007_lean_journal_commit")
def _lean_journal_commit(db: Database) -> None:
    """Fewer pages in every fsync'd journal commit (``python -m bench disk_writes``):

    - ``events_plate`` goes: nothing reads it (the plate search also matches ``read_text``, so
      it scans the journal newest first whatever the index; measured with EXPLAIN QUERY PLAN);
    - ``events_occurred`` goes: retention finds old events with an hourly scan on a reader and
      blanks or deletes them by ``seq`` in batches (the status page's time filters scanned
      in ``seq`` order already);
    - ``events`` loses AUTOINCREMENT, so a commit no longer rewrites ``sqlite_sequence``. ``seq``
      is then one above the highest row; trimming only deletes old confirmed events, and a
      reused ``seq`` would harm nothing (the outbox orders by it within one read);
    - ``presence`` becomes WITHOUT ROWID: the row lives in its primary-key B-tree, one page
      written per pass instead of the table's and its plate index's.

    Both tables are rebuilt from their stored definitions, so columns other migrations added
    are kept, and so are their other indexes."""
    _rebuild(db, "events", drop_indexes={"events_plate", "events_occurred"}, autoincrement=False)
    db.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
    _rebuild(db, "presence", without_rowid=True)


def _rebuild(
    db: Database,
    table: str,
    *,
    drop_indexes: set[str] | frozenset[str] = frozenset(),
    autoincrement: bool = True,
    without_rowid: bool = False,
) -> None:
    """Rebuild ``table`` from its own ``CREATE TABLE`` text, edited (the documented way to change
    what ALTER TABLE cannot); its indexes are created again, except ``drop_indexes``."""
    [(create,)] = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    ).fetchall()
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
        " AND sql IS NOT NULL",
        [table],
    ).fetchall()
    create = re.sub(rf'^CREATE TABLE\s+"?{table}"?', f"CREATE TABLE {table}_rebuilt", create)
    if not autoincrement:
        create = re.sub(r"\s+AUTOINCREMENT\b", "", create, flags=re.IGNORECASE)
    if without_rowid:
        create += " WITHOUT ROWID"
    db.execute(create)
    db.execute(f"INSERT INTO {table}_rebuilt SELECT * FROM {table}")
    db.execute(f"DROP TABLE {table}")
    db.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
    for name, sql in indexes:
        if name not in drop_indexes:
            db.execute(sql)


@MIGRATIONS(name="0008_access_keys")
def _access_keys(db: Database) -> None:
    """The lot's booking-code keys (:mod:`gate_agent.store._access_keys`): the whole set the
    cloud last sent, each with its retire time (NULL: the current key)."""
    db.execute(
        """CREATE TABLE access_keys (
            kid TEXT PRIMARY KEY,
            secret TEXT NOT NULL,
            retires_at TEXT,
            received_at TEXT NOT NULL
        )"""
    )


def apply_migrations(db: Database) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    pending = [m.name for m in MIGRATIONS.pending(db)]
    if pending:
        MIGRATIONS.apply(db)
    return pending
