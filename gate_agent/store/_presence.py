"""Presence in :mod:`gate_agent.store`: the vehicles the lot believes are inside (anti-passback).

Functions over an open connection inside a transaction the caller holds. Presence keeps the real
plate (it is matched against reads); it changes in the same commit as the journaled pass
(:func:`gate_agent.store._journal.insert_event`) or an audited reset.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from gate_agent.domain import JournalEvent, Presence
from gate_agent.store._rows import PRESENCE_COLUMNS, presence_from_row, to_text

__all__ = ["PresenceChange", "apply_presence", "clear_presence", "inside", "presence_of"]

PresenceChange = Literal["enter", "leave", "none"]

_ENTER = f"INSERT OR REPLACE INTO presence ({PRESENCE_COLUMNS}) VALUES (?, ?, ?, ?)"


def apply_presence(
    conn: sqlite3.Connection, event: JournalEvent, change: PresenceChange, now: datetime
) -> None:
    """``enter`` records ``event.plate`` inside (visit id, entry time, reservation); ``leave``
    clears it; ``none`` changes nothing."""
    if change == "none":
        return
    if not event.plate:
        raise ValueError("a presence change needs the event's plate")
    if change == "enter":
        entered_at = to_text(event.occurred_at or now)
        visit_id = event.visit_id or event.event_id
        conn.execute(_ENTER, (event.plate, visit_id, entered_at, event.reservation_id))
    elif change == "leave":
        clear_presence(conn, event.plate)
    else:
        raise ValueError(f"presence change must be enter, leave or none, not {change!r}")


def inside(conn: sqlite3.Connection) -> list[Presence]:
    sql = f"SELECT {PRESENCE_COLUMNS} FROM presence ORDER BY entered_at"
    return [presence_from_row(row) for row in conn.execute(sql)]


def presence_of(conn: sqlite3.Connection, plate: str) -> Presence | None:
    sql = f"SELECT {PRESENCE_COLUMNS} FROM presence WHERE plate = ?"
    row = conn.execute(sql, (plate,)).fetchone()
    return None if row is None else presence_from_row(row)


def clear_presence(conn: sqlite3.Connection, plate: str) -> bool:
    return conn.execute("DELETE FROM presence WHERE plate = ?", (plate,)).rowcount > 0
