"""Operator sessions and login throttling of :mod:`gate_agent.store` (the web UI's server side).

Functions over an open connection inside a transaction the caller holds.

- ``web_sessions``: one row per logged-in browser, keyed by the SHA-256 of the session token the
  cookie carries (a stolen database file holds no usable token). Logging out deletes the row, so
  a copied cookie stops working at once; rows past ``expires_at`` are ignored and pruned.
- ``login_attempts``: attempts per (username, client address) in a fixed window, counted in one
  upsert statement *before* the password is checked, so parallel guesses cannot slip past the
  limit; a success clears the pair. Rows of past windows are pruned on every attempt.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from gate_agent.store._rows import from_text, to_text

__all__ = [
    "clear_login_attempts",
    "close_session",
    "count_login_attempt",
    "open_session",
    "session_user",
]


def open_session(
    conn: sqlite3.Connection, token_hash: str, username: str, now: datetime, expires: datetime
) -> None:
    conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (to_text(now),))
    conn.execute(
        "INSERT INTO web_sessions (token_hash, username, created_at, expires_at)"
        " VALUES (?, ?, ?, ?)",
        (token_hash, username, to_text(now), to_text(expires)),
    )


def session_user(conn: sqlite3.Connection, token_hash: str, now: datetime) -> str | None:
    row = conn.execute(
        "SELECT username FROM web_sessions WHERE token_hash = ? AND expires_at > ?",
        (token_hash, to_text(now)),
    ).fetchone()
    return None if row is None else str(row[0])


def close_session(conn: sqlite3.Connection, token_hash: str) -> bool:
    cursor = conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))
    return cursor.rowcount > 0


_COUNT_ATTEMPT = """
INSERT INTO login_attempts (username, address, attempts, window_start) VALUES (?, ?, 1, ?)
ON CONFLICT (username, address) DO UPDATE SET
    attempts = CASE WHEN window_start <= ? THEN 1 ELSE attempts + 1 END,
    window_start = CASE WHEN window_start <= ? THEN excluded.window_start ELSE window_start END
RETURNING attempts, window_start
"""


def count_login_attempt(
    conn: sqlite3.Connection, username: str, address: str, now: datetime, window_start: datetime
) -> tuple[int, datetime]:
    """Count one attempt of ``username`` from ``address``; returns the attempts in the current
    window (this one included) and when that window started. Windows that started at or before
    ``window_start`` are over."""
    cutoff = to_text(window_start)
    conn.execute("DELETE FROM login_attempts WHERE window_start <= ?", (cutoff,))
    attempts, started = conn.execute(
        _COUNT_ATTEMPT, (username, address, to_text(now), cutoff, cutoff)
    ).fetchone()
    return int(attempts), from_text(started)


def clear_login_attempts(conn: sqlite3.Connection, username: str, address: str) -> None:
    conn.execute(
        "DELETE FROM login_attempts WHERE username = ? AND address = ?", (username, address)
    )
