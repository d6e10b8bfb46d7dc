"""The reservation and allow/deny-list cache of :mod:`gate_agent.store`, and its plate index.

Private to the store package: functions over an open connection inside a transaction the
caller holds. Every cached plate (of a reservation or a list entry) has its
``plates.index_keys`` rows in ``plate_keys``, as has every plate recorded inside (presence: a
drive-up visitor has neither); the rows are added when a plate first appears and dropped when the
last reservation, list entry or presence naming it goes.

The lane's hot path, the lookup over ``plate_keys``, is in :mod:`gate_agent.store._lookup`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from gate_agent import plates
from gate_agent.domain import ListEntry, ListKind, Reservation
from gate_agent.store._rows import (
    LIST_COLUMNS,
    RESERVATION_COLUMNS,
    list_entry_from_row,
    list_entry_key,
    list_entry_row,
    reservation_from_row,
    reservation_row,
)

__all__ = [
    "add_keys",
    "count_list_entries",
    "delete_list_entry",
    "drop_keys_if_unused",
    "get_reservation",
    "list_entries",
    "put_list_entry",
    "remove_reservation",
    "replace_list_entries",
    "replace_reservations",
    "reservations_for_plate",
    "upsert_reservations",
]

_UPSERT_RESERVATION = """
INSERT INTO reservations (id, plate, starts_at, ends_at, status, amount_owed_cents, currency,
                          space_label, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    plate = excluded.plate, starts_at = excluded.starts_at, ends_at = excluded.ends_at,
    status = excluded.status, amount_owed_cents = excluded.amount_owed_cents,
    currency = excluded.currency, space_label = excluded.space_label,
    updated_at = excluded.updated_at
"""
_STAGE_RESERVATION = (
    "INSERT INTO temp.staged_reservations (id, plate, starts_at, ends_at, status,"
    " amount_owed_cents, currency, space_label, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RESERVATIONS_OF = (
    f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE plate = ? ORDER BY starts_at"
)
_PLATE_USED = """
SELECT EXISTS (SELECT 1 FROM reservations WHERE plate = ?1)
    OR EXISTS (SELECT 1 FROM list_entries WHERE plate = ?1)
    OR EXISTS (SELECT 1 FROM presence WHERE plate = ?1)
"""


def add_keys(conn: sqlite3.Connection, plate_texts: Iterable[str]) -> None:
    """Index ``plate_texts`` (cached or inside); already indexed keys are kept."""
    rows = sorted({(key, p) for p in plate_texts for key in plates.index_keys(p)})
    conn.executemany("INSERT OR IGNORE INTO plate_keys (key, plate) VALUES (?, ?)", rows)


def drop_keys_if_unused(conn: sqlite3.Connection, plate_texts: Iterable[str]) -> None:
    """Unindex those of ``plate_texts`` no reservation, list entry or car inside names."""
    for p in set(plate_texts):
        if not conn.execute(_PLATE_USED, (p,)).fetchone()[0]:
            conn.executemany(
                "DELETE FROM plate_keys WHERE key = ? AND plate = ?",
                [(key, p) for key in plates.index_keys(p)],
            )


def _normalised(r: Reservation) -> Reservation:
    plate = plates.normalise(r.plate)
    if not plate:
        raise ValueError(f"reservation {r.id} has no plate")
    return r if plate == r.plate else replace(r, plate=plate)


def upsert_reservations(
    conn: sqlite3.Connection, batch: Sequence[Reservation], updated_at: str
) -> int:
    """Insert or update a batch (keep it to a few thousand); keeps ``plate_keys`` in step."""
    batch = [_normalised(r) for r in batch]
    old: dict[str, str] = {}
    for start in range(0, len(batch), 500):
        ids = [r.id for r in batch[start : start + 500]]
        sql = f"SELECT id, plate FROM reservations WHERE id IN ({', '.join('?' * len(ids))})"
        old.update(conn.execute(sql, ids).fetchall())
    conn.executemany(_UPSERT_RESERVATION, (reservation_row(r, updated_at) for r in batch))
    add_keys(conn, {r.plate for r in batch if old.get(r.id) != r.plate})
    drop_keys_if_unused(conn, {old[r.id] for r in batch if old.get(r.id, r.plate) != r.plate})
    return len(batch)


def replace_reservations(
    conn: sqlite3.Connection, batches: Iterable[Sequence[Reservation]], updated_at: str
) -> int:
    """Replace every cached reservation (a full snapshot); list-entry keys are kept.

    Rows are staged in a temporary table, then inserted in clustered-key order, and the plate
    keys likewise, so both B-trees are built by appending instead of by random inserts that
    rewrite their pages batch after batch. A snapshot naming one id twice keeps one of them.
    """
    conn.execute("DELETE FROM reservations")
    conn.execute("DELETE FROM plate_keys")
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staged_reservations AS SELECT * FROM reservations WHERE 0"
    )
    conn.execute("DELETE FROM temp.staged_reservations")
    count = 0
    for batch in batches:
        rows = [reservation_row(_normalised(r), updated_at) for r in batch]
        conn.executemany(_STAGE_RESERVATION, rows)
        count += len(rows)
    conn.execute(
        "INSERT OR REPLACE INTO reservations SELECT * FROM temp.staged_reservations"
        " ORDER BY plate, id"
    )
    conn.execute("DELETE FROM temp.staged_reservations")
    cached = conn.execute(
        "SELECT plate FROM reservations UNION SELECT plate FROM list_entries"
        " UNION SELECT plate FROM presence ORDER BY plate"
    )
    _insert_keys_in_order(conn, (row[0] for row in cached))
    return count


def _insert_keys_in_order(conn: sqlite3.Connection, plate_texts: Iterator[str]) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS staged_keys (key TEXT NOT NULL, plate TEXT)")
    conn.execute("DELETE FROM temp.staged_keys")
    conn.executemany(
        "INSERT INTO temp.staged_keys VALUES (?, ?)",
        ((key, p) for p in plate_texts for key in plates.index_keys(p)),
    )
    conn.execute(
        "INSERT OR IGNORE INTO plate_keys (key, plate)"
        " SELECT key, plate FROM temp.staged_keys ORDER BY key, plate"
    )
    conn.execute("DELETE FROM temp.staged_keys")


def remove_reservation(conn: sqlite3.Connection, reservation_id: str) -> bool:
    row = conn.execute("SELECT plate FROM reservations WHERE id = ?", (reservation_id,)).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
    drop_keys_if_unused(conn, [row[0]])
    return True


def get_reservation(conn: sqlite3.Connection, reservation_id: str) -> Reservation | None:
    sql = f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?"
    row = conn.execute(sql, (reservation_id,)).fetchone()
    return None if row is None else reservation_from_row(row)


def reservations_for_plate(conn: sqlite3.Connection, plate: str) -> list[Reservation]:
    rows = conn.execute(_RESERVATIONS_OF, (plates.normalise(plate),))
    return [reservation_from_row(row) for row in rows]


_ROW_COLUMNS = (  # the columns of list_entry_row, in its order
    "plate, entry_key, entry_id, kind, category, valid_from, valid_until, note, lanes, updated_at"
)
_INSERT_LIST_ENTRY = """
INSERT OR REPLACE INTO list_entries (plate, entry_key, entry_id, kind, category, valid_from,
                                     valid_until, note, lanes, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _list_plate(entry: ListEntry) -> str:
    plate = plates.normalise(entry.plate)
    if not plate:
        raise ValueError("list entry has no plate")
    return plate


def put_list_entry(conn: sqlite3.Connection, entry: ListEntry, updated_at: str) -> None:
    """Add or replace the entry with the same key (its ``entry_id``, else its plate and kind);
    an entry moved to another plate leaves the old one."""
    plate = _list_plate(entry)
    key = list_entry_key(entry, plate)
    old = conn.execute("SELECT plate FROM list_entries WHERE entry_key = ?", (key,)).fetchone()
    if old is not None and old[0] != plate:
        conn.execute("DELETE FROM list_entries WHERE entry_key = ?", (key,))
    conn.execute(_INSERT_LIST_ENTRY, list_entry_row(entry, plate, updated_at))
    add_keys(conn, [plate])
    if old is not None and old[0] != plate:
        drop_keys_if_unused(conn, [old[0]])


def delete_list_entry(
    conn: sqlite3.Connection, plate: str, kind: ListKind, entry_id: str | None = None
) -> bool:
    """Remove the entry ``entry_id``; without an id, every ``kind`` entry of ``plate``."""
    if entry_id is not None:
        sql = "DELETE FROM list_entries WHERE entry_key = ? RETURNING plate"
        gone = conn.execute(sql, (f"id:{entry_id}",)).fetchall()
    else:
        sql = "DELETE FROM list_entries WHERE plate = ? AND kind = ? RETURNING plate"
        gone = conn.execute(sql, (plates.normalise(plate), str(kind))).fetchall()
    drop_keys_if_unused(conn, [row[0] for row in gone])
    return bool(gone)


def replace_list_entries(
    conn: sqlite3.Connection, entries: Iterable[ListEntry], updated_at: str
) -> int:
    """Make the lists exactly ``entries`` (a snapshot); reservations and their keys are kept.

    Only what differs is written: a snapshot mostly repeats what the cache holds (every resync,
    every bulk import of a few changed rows), and the plate index is the expensive part. Entries
    without a usable plate raise ``ValueError`` (the caller filters them first)."""
    wanted = {
        row[1]: row for row in (list_entry_row(e, _list_plate(e), updated_at) for e in entries)
    }
    held = {row[1]: row for row in conn.execute(f"SELECT {_ROW_COLUMNS} FROM list_entries")}
    gone = [key for key in held if key not in wanted]
    changed = sorted(
        (row for key, row in wanted.items() if held.get(key, ())[:-1] != row[:-1]),
        key=lambda row: (str(row[0]), str(row[1])),
    )
    conn.executemany("DELETE FROM list_entries WHERE entry_key = ?", ((k,) for k in gone))
    conn.executemany(_INSERT_LIST_ENTRY, changed)
    old_plates = {str(row[0]) for row in held.values()}
    new_plates = {str(row[0]) for row in wanted.values()}
    add_keys(conn, new_plates - old_plates)
    drop_keys_if_unused(conn, old_plates - new_plates)
    return len(wanted)


def list_entries(conn: sqlite3.Connection) -> list[ListEntry]:
    sql = f"SELECT {LIST_COLUMNS} FROM list_entries ORDER BY plate, kind, entry_key"
    return [list_entry_from_row(row) for row in conn.execute(sql)]


def count_list_entries(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM list_entries").fetchone()[0])
