"""The event journal of :mod:`gate_agent.store`, which doubles as the outbox to the cloud.

Functions over an open connection inside a transaction the caller holds. The outbox is the
journal rows whose ``sent_at`` is NULL, read in ``seq`` order through the partial index of
unconfirmed events (an unsent event is never confirmed).
``sent_at`` is the broker's PUBACK; ``confirmed_at`` the cloud's ``EventAck`` (stored for good).
A sent but unconfirmed event is put back in the outbox (:func:`requeue_unconfirmed`) when the
confirmation is overdue or after a reconnect.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from gate_agent.domain import EventKind, JournalEvent, StayKind
from gate_agent.store._presence import PresenceChange, apply_presence
from gate_agent.store._rows import EVENT_COLUMNS, event_from_row, event_row, to_text

__all__ = [
    "events",
    "insert_event",
    "mark_confirmed",
    "mark_sent",
    "outbox_depth",
    "purge_reads",
    "requeue_unconfirmed",
    "trim_confirmed",
    "unsent_events",
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


def unsent_events(conn: sqlite3.Connection, limit: int) -> list[JournalEvent]:
    sql = f"""SELECT {EVENT_COLUMNS} FROM events INDEXED BY events_unconfirmed
              WHERE confirmed_at IS NULL AND sent_at IS NULL ORDER BY seq LIMIT ?"""
    return [event_from_row(row) for row in conn.execute(sql, (limit,))]


def mark_sent(conn: sqlite3.Connection, event_ids: Iterable[str], now: datetime) -> int:
    sql = "UPDATE events SET sent_at = ? WHERE event_id = ? AND sent_at IS NULL"
    sent_at = to_text(now)
    return sum(conn.execute(sql, (sent_at, eid)).rowcount for eid in event_ids)


def mark_confirmed(conn: sqlite3.Connection, event_ids: Iterable[str], now: datetime) -> int:
    """Confirmed by the cloud; also sent (an ack can overtake the PUBACK's bookkeeping)."""
    sql = """UPDATE events SET confirmed_at = ?1, sent_at = coalesce(sent_at, ?1)
             WHERE event_id = ?2 AND confirmed_at IS NULL"""
    stamp = to_text(now)
    return sum(conn.execute(sql, (stamp, eid)).rowcount for eid in event_ids)


def requeue_unconfirmed(conn: sqlite3.Connection, sent_before: datetime) -> int:
    """Back into the outbox: events the broker accepted before ``sent_before`` that the cloud
    has not confirmed (the broker may have lost them)."""
    cursor = conn.execute(
        """UPDATE events SET sent_at = NULL
           WHERE confirmed_at IS NULL AND sent_at IS NOT NULL AND sent_at < ?""",
        (to_text(sent_before),),
    )
    return cursor.rowcount


def outbox_depth(conn: sqlite3.Connection) -> int:
    """Events the cloud has not confirmed yet (unsent, or sent and unconfirmed)."""
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


def purge_reads(conn: sqlite3.Connection, older_than: datetime) -> int:
    """Blank plate text and image path of every event older than ``older_than``.

    Confirmed or not: an offline lot must not keep plates past retention. An unconfirmed event
    stays in the outbox with its ``event_id`` and is still sent, plate-less (the cloud links
    events to bookings by reservation id and deduplicates on ``event_id``).
    """
    cursor = conn.execute(
        """UPDATE events SET plate = NULL, read_text = NULL, image_path = NULL
           WHERE occurred_at < ?
             AND (plate IS NOT NULL OR read_text IS NOT NULL OR image_path IS NOT NULL)""",
        (to_text(older_than),),
    )
    return cursor.rowcount


def trim_confirmed(conn: sqlite3.Connection, older_than: datetime, limit: int) -> int:
    """Delete at most ``limit`` events the cloud confirmed that are older than ``older_than``
    (oldest first); an unconfirmed event is never deleted, whatever its age."""
    cursor = conn.execute(
        """DELETE FROM events WHERE seq IN (
               SELECT seq FROM events
               WHERE occurred_at < ? AND confirmed_at IS NOT NULL
               ORDER BY occurred_at LIMIT ?)""",
        (to_text(older_than), limit),
    )
    return cursor.rowcount
