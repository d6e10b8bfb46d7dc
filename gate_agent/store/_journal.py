"""The event journal of :mod:`gate_agent.store`, which doubles as the outbox to the cloud.

Functions over an open connection inside a transaction the caller holds. The outbox is the
journal rows the cloud has not confirmed (``confirmed_at`` NULL), read in ``seq`` order through
their partial index; which of them are in flight (PUBACKed, or confirmed but not yet written) is
kept in memory by the store (:mod:`gate_agent.store._deliveries`). On disk, ``confirmed_at`` is
the cloud's ``EventAck`` and ``sent_at`` the broker's PUBACK before it (both written with the
confirmation); ``sent_at`` of an unconfirmed row means nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from gate_agent.domain import EventKind, JournalEvent, StayKind
from gate_agent.store._deliveries import Confirmation
from gate_agent.store._presence import PresenceChange, apply_presence
from gate_agent.store._rows import EVENT_COLUMNS, event_from_row, event_row, to_text

__all__ = [
    "confirmed_before",
    "events",
    "exited_confirmed_reservations",
    "insert_event",
    "outbox_depth",
    "purge_reads",
    "readable_before",
    "trim_confirmed",
    "unconfirmed_events",
    "unconfirmed_ids",
    "write_confirmations",
]

PlateHasher = Callable[[str], str]

_INSERT_EVENT = f"""
INSERT INTO events ({EVENT_COLUMNS.removesuffix(", sent_at, confirmed_at")})
VALUES ({", ".join("?" * 18)})
ON CONFLICT (event_id) DO NOTHING
"""


def insert_event(
    conn: sqlite3.Connection,
    event: JournalEvent,
    presence: PresenceChange,
    now: datetime,
    hasher: PlateHasher,
    stay_kind: StayKind = StayKind.BOOKING,
) -> bool:
    """Journal ``event`` and apply its presence change; False if the event_id was already there.

    Presence keeps the real plate (it is matched against reads); the journal keeps
    ``hasher(plate)``. A repeated event_id changes nothing, so a retried write is harmless.
    An entry records the stay's ``stay_kind`` (what the exit will price it as).
    """
    stored = replace(
        event,
        plate=None if event.plate is None else hasher(event.plate),
        read_text=None if event.read_text is None else hasher(event.read_text),
    )
    if conn.execute(_INSERT_EVENT, event_row(stored, now)).rowcount == 0:
        return False
    if presence != "none":
        apply_presence(conn, event, presence, now, stay_kind)
    return True


def unconfirmed_events(
    conn: sqlite3.Connection, after_seq: int, limit: int
) -> list[tuple[int, JournalEvent]]:
    """Events the cloud has not confirmed with ``seq`` above ``after_seq``, in journal order,
    each with its ``seq`` (the outbox pages through them, skipping what is in flight)."""
    sql = f"""SELECT seq, {EVENT_COLUMNS} FROM events INDEXED BY events_unconfirmed
              WHERE confirmed_at IS NULL AND seq > ? ORDER BY seq LIMIT ?"""
    return [(row[0], event_from_row(row[1:])) for row in conn.execute(sql, (after_seq, limit))]


def unconfirmed_ids(conn: sqlite3.Connection, event_ids: Iterable[str]) -> list[str]:
    """Those of ``event_ids`` that are journaled and not confirmed on disk."""
    sql = "SELECT 1 FROM events WHERE event_id = ? AND confirmed_at IS NULL"
    return [eid for eid in event_ids if conn.execute(sql, (eid,)).fetchone() is not None]


def write_confirmations(conn: sqlite3.Connection, confirmations: Iterable[Confirmation]) -> int:
    """Store the cloud's confirmations (and the PUBACK time with each); returns rows changed."""
    sql = """UPDATE events SET confirmed_at = ?, sent_at = coalesce(sent_at, ?)
             WHERE event_id = ? AND confirmed_at IS NULL"""
    rows = [(to_text(c.confirmed_at), to_text(c.sent_at), c.event_id) for c in confirmations]
    return sum(conn.execute(sql, row).rowcount for row in rows)


def outbox_depth(conn: sqlite3.Connection) -> int:
    """Events not confirmed on disk (the store subtracts confirmations not written yet)."""
    sql = "SELECT count(*) FROM events WHERE confirmed_at IS NULL"
    return int(conn.execute(sql).fetchone()[0])


def events(
    conn: sqlite3.Connection,
    limit: int,
    *,
    plate: str | None = None,
    lane_id: str | None = None,
    kind: EventKind | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[JournalEvent]:
    """Newest first; ``plate`` (already hashed if hashing is on) matches plate or read text."""
    where: list[str] = []
    args: list[Any] = []
    if plate is not None:
        where.append("(plate = ? OR read_text = ?)")
        args += [plate, plate]
    for column, value in (("lane_id", lane_id), ("kind", kind)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(str(value))
    if since is not None:
        where.append("occurred_at >= ?")
        args.append(to_text(since))
    if until is not None:
        where.append("occurred_at < ?")
        args.append(to_text(until))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {EVENT_COLUMNS} FROM events {clause} ORDER BY seq DESC LIMIT ?"
    return [event_from_row(row) for row in conn.execute(sql, (*args, limit))]


def readable_before(
    conn: sqlite3.Connection, older_than: datetime, after_seq: int, limit: int
) -> list[int]:
    """The next ``limit`` events (by ``seq``, above ``after_seq``) older than ``older_than`` that
    still hold a plate, a read or an image path. A scan in journal order (no time index: a
    journal commit would have to write it): run it on a reader, then blank by ``seq``."""
    sql = """SELECT seq FROM events
             WHERE seq > ? AND occurred_at < ?
               AND (plate IS NOT NULL OR read_text IS NOT NULL OR image_path IS NOT NULL)
             ORDER BY seq LIMIT ?"""
    return [row[0] for row in conn.execute(sql, (after_seq, to_text(older_than), limit))]


def purge_reads(conn: sqlite3.Connection, seqs: Iterable[int], older_than: datetime) -> int:
    """Blank plate text and image path of the events ``seqs`` (if still older than
    ``older_than``), confirmed or not: an offline lot must not keep plates past retention. An
    unconfirmed event stays in the outbox with its ``event_id`` and is still sent, plate-less
    (the cloud links events to bookings by reservation id and deduplicates on ``event_id``)."""
    sql = """UPDATE events SET plate = NULL, read_text = NULL, image_path = NULL
             WHERE seq = ? AND occurred_at < ?"""
    cutoff = to_text(older_than)
    return sum(conn.execute(sql, (seq, cutoff)).rowcount for seq in seqs)


def confirmed_before(
    conn: sqlite3.Connection, older_than: datetime, after_seq: int, limit: int
) -> list[int]:
    """The next ``limit`` events (by ``seq``, above ``after_seq``) the cloud confirmed that are
    older than ``older_than``; a scan in journal order, as :func:`readable_before`."""
    sql = """SELECT seq FROM events
             WHERE seq > ? AND occurred_at < ? AND confirmed_at IS NOT NULL
             ORDER BY seq LIMIT ?"""
    return [row[0] for row in conn.execute(sql, (after_seq, to_text(older_than), limit))]


def trim_confirmed(conn: sqlite3.Connection, seqs: Iterable[int]) -> int:
    """Delete the events ``seqs``; an unconfirmed event is never deleted, whatever its age."""
    sql = "DELETE FROM events WHERE seq = ? AND confirmed_at IS NOT NULL"
    return sum(conn.execute(sql, (seq,)).rowcount for seq in seqs)


def exited_confirmed_reservations(conn: sqlite3.Connection) -> set[str]:
    """Ids of reservations this gate journaled an exit for that the cache still holds as
    confirmed (the cloud's completion has not arrived yet): used up all the same. One scan of
    the journal at start; usually none, as the cloud's push follows an exit within seconds."""
    sql = """SELECT DISTINCT e.reservation_id FROM events AS e
             JOIN reservations AS r ON r.id = e.reservation_id
             WHERE e.kind = 'exit' AND r.status = 'confirmed'"""
    return {row[0] for row in conn.execute(sql)}
