"""Presence in :mod:`gate_agent.store`: the vehicles the lot believes are inside, one stay each.

Functions over an open connection inside a transaction the caller holds. Presence keeps the real
plate (it is matched against reads); it changes in the same commit as the journaled pass
(:func:`gate_agent.store._journal.insert_event`) or an audited reset. A car inside is on a stay:
its id is the visit id of the entry pass, its kind (booking, drive-up, permit) says how the exit
prices it. A plate inside is in the plate index like a cached one, so the exit lane finds a
drive-up visitor (no reservation, no list entry) by the same lookup; it leaves the index when
the car leaves, as do the stay's payments (:mod:`gate_agent.store._stays`).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from gate_agent.domain import JournalEvent, Presence, StayKind
from gate_agent.store import _cache as cache
from gate_agent.store._rows import PRESENCE_COLUMNS, presence_from_row, to_text

__all__ = [
    "PresenceChange",
    "apply_presence",
    "clear_presence",
    "inside",
    "inside_counts",
    "presence_of",
]

PresenceChange = Literal["enter", "leave", "none"]

_ENTER = f"INSERT OR REPLACE INTO presence ({PRESENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?)"


def apply_presence(
    conn: sqlite3.Connection,
    event: JournalEvent,
    change: PresenceChange,
    now: datetime,
    kind: StayKind = StayKind.BOOKING,
) -> None:
    """``enter`` records ``event.plate`` inside (visit id, entry time, reservation, the stay's
    ``kind``); ``leave`` clears it; ``none`` changes nothing."""
    if change == "none":
        return
    if not event.plate:
        raise ValueError("a presence change needs the event's plate")
    if change == "enter":
        entered_at = to_text(event.occurred_at or now)
        visit_id = event.visit_id or event.event_id
        row = (event.plate, visit_id, entered_at, event.reservation_id, str(kind))
        conn.execute(_ENTER, row)
        cache.add_keys(conn, [event.plate])
    elif change == "leave":
        clear_presence(conn, event.plate)
    else:
        raise ValueError(f"presence change must be enter, leave or none, not {change!r}")


def inside(conn: sqlite3.Connection) -> list[Presence]:
    sql = f"SELECT {PRESENCE_COLUMNS} FROM presence ORDER BY entered_at"
    return [presence_from_row(row) for row in conn.execute(sql)]


def inside_counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(cars inside, of them drive-up visitors)."""
    sql = "SELECT count(*), coalesce(sum(kind = 'drive_up'), 0) FROM presence"
    cars, drive_ups = conn.execute(sql).fetchone()
    return int(cars), int(drive_ups)


def presence_of(conn: sqlite3.Connection, plate: str) -> Presence | None:
    sql = f"SELECT {PRESENCE_COLUMNS} FROM presence WHERE plate = ?"
    row = conn.execute(sql, (plate,)).fetchone()
    return None if row is None else presence_from_row(row)


def clear_presence(conn: sqlite3.Connection, plate: str) -> bool:
    """The car left (or an operator reset it): its stay's payments go with it, and its plate
    leaves the index unless a reservation or list entry still names it."""
    gone = conn.execute("DELETE FROM presence WHERE plate = ? RETURNING visit_id", (plate,))
    stays = [row[0] for row in gone.fetchall()]
    conn.executemany("DELETE FROM stay_payments WHERE stay_id = ?", ((s,) for s in stays))
    cache.drop_keys_if_unused(conn, [plate])
    return bool(stays)
