"""The lot's booking-code keys as the cache keeps them (in :mod:`gate_agent.store`).

Private to the store package: functions over an open connection inside a transaction the caller
holds. The cloud sends the whole set the lot accepts (the current key and any being rotated out,
each with its retire time) on an ``access_keys`` change and in snapshots; the set replaces the
one kept. Secrets stay in this table and in memory, never in a log line.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterable
from datetime import datetime

from gate_agent.store._rows import opt_text, opt_time, to_text
from parkgate_protocol import SigningKey

__all__ = ["load", "replace"]


def replace(conn: sqlite3.Connection, keys: Iterable[SigningKey], at: datetime) -> int:
    rows = [
        (
            k.kid,
            base64.urlsafe_b64encode(k.secret).decode(),
            opt_text(k.retires_at),
            to_text(at),
        )
        for k in keys
    ]
    conn.execute("DELETE FROM access_keys")
    conn.executemany(
        "INSERT INTO access_keys (kid, secret, retires_at, received_at) VALUES (?, ?, ?, ?)", rows
    )
    return len(rows)


def load(conn: sqlite3.Connection) -> tuple[SigningKey, ...]:
    rows = conn.execute("SELECT kid, secret, retires_at FROM access_keys ORDER BY kid").fetchall()
    return tuple(
        SigningKey(kid, base64.urlsafe_b64decode(secret), opt_time(retires_at))
        for kid, secret, retires_at in rows
    )
