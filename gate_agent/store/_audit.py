"""The audit log of :mod:`gate_agent.store`: operator actions (manual open, presence reset, ...).

Functions over an open connection inside a transaction the caller holds.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from gate_agent.domain import AuditEntry
from gate_agent.store._rows import audit_from_row, to_text

__all__ = ["audit", "audit_log", "forget_plates", "trim_before"]


def audit(
    conn: sqlite3.Connection,
    at: datetime,
    actor: str,
    action: str,
    reason: str,
    lane_id: str | None,
    detail: dict[str, Any] | None,
) -> int:
    if not actor or not reason:
        raise ValueError("an audited action needs an actor and a reason")
    cursor = conn.execute(
        "INSERT INTO audit (at, actor, action, reason, lane_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (to_text(at), actor, action, reason, lane_id, json.dumps(detail or {}, sort_keys=True)),
    )
    return int(cursor.lastrowid or 0)


def audit_log(conn: sqlite3.Connection, limit: int) -> list[AuditEntry]:
    sql = (
        "SELECT id, at, actor, action, reason, lane_id, detail FROM audit ORDER BY id DESC LIMIT ?"
    )
    return [audit_from_row(row) for row in conn.execute(sql, (limit,))]


def forget_plates(conn: sqlite3.Connection, older_than: datetime) -> int:
    """Drop the plate (a presence reset's) from audit details older than ``older_than``; the
    entry itself (who, what, why, when) is kept."""
    cursor = conn.execute(
        """UPDATE audit SET detail = json_remove(detail, '$.plate')
           WHERE at < ? AND json_extract(detail, '$.plate') IS NOT NULL""",
        (to_text(older_than),),
    )
    return cursor.rowcount


def trim_before(conn: sqlite3.Connection, older_than: datetime, batch: int) -> int:
    """Delete up to ``batch`` audit entries older than ``older_than``, oldest first."""
    cursor = conn.execute(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY id LIMIT ?)",
        (to_text(older_than), batch),
    )
    return cursor.rowcount
