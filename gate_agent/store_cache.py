"""The reservation and allow/deny-list cache of :mod:`gate_agent.store`, and the plate lookup.

Part of the store: functions over an open connection inside a transaction the caller holds.
Every cached plate (of a reservation or a list entry) has its ``plates.index_keys`` rows in
``plate_keys``; the rows are added when a plate first appears and dropped when the last
reservation or list entry naming it goes.

The lane's hot path (``Store.facts_for``) is ONE fixed statement on the raw ``sqlite3`` cursor
(:func:`near_facts_sql`, prepared once per connection by the statement cache): an indexed ``IN``
lookup of the read's neighbourhood keys joined to the near plates' reservations, list entries and
presence; then :func:`gate_agent.plates.match` in Python keeps the matched plate's rows. One
statement is its own read snapshot, so no explicit read transaction is needed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

from gate_agent import plates
from gate_agent.domain import CandidateFacts, ListEntry, ListKind, Reservation
from gate_agent.store_rows import (
    LIST_COLUMNS,
    RESERVATION_COLUMNS,
    list_entry_from_row,
    opt_text,
    presence_from_row,
    reservation_from_row,
    reservation_row,
)

__all__ = [
    "delete_list_entry",
    "facts_from_rows",
    "get_reservation",
    "list_entries",
    "near_facts_sql",
    "put_list_entry",
    "read_keys",
    "remove_reservation",
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
_RESERVATIONS_OF = (
    f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE plate = ? ORDER BY starts_at"
)
_PLATE_USED = """
SELECT EXISTS (SELECT 1 FROM reservations WHERE plate = ?1)
    OR EXISTS (SELECT 1 FROM list_entries WHERE plate = ?1)
"""


@lru_cache(maxsize=32)
def near_facts_sql(n_keys: int) -> str:
    """One statement: every cached plate near the read keys, with all its facts.

    Rows are ``(plate, tag, *columns)``; tag ``r`` reservation, ``l`` list entry, ``p`` presence.
    Every plate in ``plate_keys`` has a reservation or a list entry, so each near plate shows up.
    """
    return f"""
WITH near(plate) AS MATERIALIZED (
    SELECT DISTINCT plate FROM plate_keys WHERE key IN ({", ".join("?" * n_keys)})
)
SELECT r.plate, 'r', r.id, r.plate, r.starts_at, r.ends_at, r.status, r.amount_owed_cents,
       r.currency, r.space_label
  FROM near JOIN reservations AS r ON r.plate = near.plate
UNION ALL
SELECT l.plate, 'l', l.plate, l.kind, l.valid_from, l.valid_until, l.note, NULL, NULL, NULL
  FROM near JOIN list_entries AS l ON l.plate = near.plate
UNION ALL
SELECT p.plate, 'p', p.plate, p.visit_id, p.entered_at, p.reservation_id, NULL, NULL, NULL, NULL
  FROM near JOIN presence AS p ON p.plate = near.plate
"""


def read_keys(read_text: str) -> tuple[str, tuple[str, ...]]:
    """The normalised read and the index keys to look up (none for an empty read)."""
    read = plates.normalise(read_text)
    return read, tuple(plates.query_keys(read)) if read else ()


def facts_from_rows(
    read: str, confidence: float, rows: Sequence[tuple[Any, ...]]
) -> CandidateFacts:
    """Match ``read`` against the near plates of :func:`near_facts_sql` rows; gather its facts."""
    found = plates.match(read, {row[0] for row in rows})
    if found.plate is None:
        return CandidateFacts(read, confidence, found)
    mine = [row for row in rows if row[0] == found.plate]
    reservations = [reservation_from_row(row[2:10]) for row in mine if row[1] == "r"]
    reservations.sort(key=lambda r: r.starts_at)
    entries = [list_entry_from_row(row[2:7]) for row in mine if row[1] == "l"]
    presence = [presence_from_row(row[2:6]) for row in mine if row[1] == "p"]
    return CandidateFacts(
        read_text=read,
        confidence=confidence,
        match=found,
        reservations=tuple(reservations),
        list_entries=tuple(sorted(entries, key=lambda e: e.kind)),
        presence=presence[0] if presence else None,
    )


def _add_keys(conn: sqlite3.Connection, plate_texts: Iterable[str]) -> None:
    rows = sorted({(key, p) for p in plate_texts for key in plates.index_keys(p)})
    conn.executemany("INSERT OR IGNORE INTO plate_keys (key, plate) VALUES (?, ?)", rows)


def _drop_keys_if_unused(conn: sqlite3.Connection, plate_texts: Iterable[str]) -> None:
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
    _add_keys(conn, {r.plate for r in batch if old.get(r.id) != r.plate})
    _drop_keys_if_unused(conn, {old[r.id] for r in batch if old.get(r.id, r.plate) != r.plate})
    return len(batch)


def replace_reservations(
    conn: sqlite3.Connection, batches: Iterable[Sequence[Reservation]], updated_at: str
) -> int:
    """Replace every cached reservation (a full snapshot); list-entry keys are kept.

    The plate keys are staged in a temporary table and inserted in key order at the end, so the
    index is built by appending instead of by random inserts that rewrite its pages per batch.
    """
    conn.execute("DELETE FROM reservations")
    conn.execute("DELETE FROM plate_keys")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS staged_plates (plate TEXT NOT NULL)")
    conn.execute("DELETE FROM temp.staged_plates")
    conn.execute("INSERT INTO temp.staged_plates SELECT plate FROM list_entries")
    count = 0
    for batch in batches:
        rows = [_normalised(r) for r in batch]
        conn.executemany(_UPSERT_RESERVATION, (reservation_row(r, updated_at) for r in rows))
        conn.executemany("INSERT INTO temp.staged_plates VALUES (?)", ((r.plate,) for r in rows))
        count += len(rows)
    staged = conn.execute("SELECT DISTINCT plate FROM temp.staged_plates ORDER BY plate")
    _insert_keys_in_order(conn, (row[0] for row in staged))
    conn.execute("DELETE FROM temp.staged_plates")
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
    _drop_keys_if_unused(conn, [row[0]])
    return True


def get_reservation(conn: sqlite3.Connection, reservation_id: str) -> Reservation | None:
    sql = f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?"
    row = conn.execute(sql, (reservation_id,)).fetchone()
    return None if row is None else reservation_from_row(row)


def reservations_for_plate(conn: sqlite3.Connection, plate: str) -> list[Reservation]:
    rows = conn.execute(_RESERVATIONS_OF, (plates.normalise(plate),))
    return [reservation_from_row(row) for row in rows]


def put_list_entry(conn: sqlite3.Connection, entry: ListEntry, updated_at: str) -> None:
    plate = plates.normalise(entry.plate)
    if not plate:
        raise ValueError("list entry has no plate")
    conn.execute(
        """INSERT INTO list_entries (plate, kind, valid_from, valid_until, note, updated_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (plate, kind) DO UPDATE SET valid_from = excluded.valid_from,
               valid_until = excluded.valid_until, note = excluded.note,
               updated_at = excluded.updated_at""",
        (
            plate,
            str(entry.kind),
            opt_text(entry.valid_from),
            opt_text(entry.valid_until),
            entry.note,
            updated_at,
        ),
    )
    _add_keys(conn, [plate])


def delete_list_entry(conn: sqlite3.Connection, plate: str, kind: ListKind) -> bool:
    plate = plates.normalise(plate)
    sql = "DELETE FROM list_entries WHERE plate = ? AND kind = ?"
    removed = conn.execute(sql, (plate, str(kind))).rowcount > 0
    if removed:
        _drop_keys_if_unused(conn, [plate])
    return removed


def list_entries(conn: sqlite3.Connection) -> list[ListEntry]:
    rows = conn.execute(f"SELECT {LIST_COLUMNS} FROM list_entries ORDER BY plate, kind")
    return [list_entry_from_row(row) for row in rows]
