"""The lot's cloud policy as the cache keeps it (in :mod:`gate_agent.store`).

Private to the store package: functions over an open connection inside a transaction the
caller holds. Two rows in ``lot_policy``: the policy in force (its raw JSON as the cloud sent
it, its version, when it was applied) and the last one refused (with why). Parsing is the
protocol's (:func:`parkgate_protocol.parse_policy`); a stored policy this agent can no longer
parse (a downgrade) is treated as none.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gate_agent.store._rows import from_text, to_text
from parkgate_protocol import LotPolicy, ProtocolError, parse_policy

__all__ = ["PolicyInForce", "RejectedPolicy", "load", "load_rejected", "refuse", "save"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PolicyInForce:
    """The policy the lanes obey, and when the gate applied it."""

    policy: LotPolicy
    raw: dict[str, Any]
    applied_at: datetime

    @property
    def version(self) -> int:
        return self.policy.version


@dataclass(frozen=True, slots=True)
class RejectedPolicy:
    """The last policy the gate could not apply: its version if it had a readable one, why
    (``reason`` is the :class:`~parkgate_protocol.ProtocolError`'s text) and when."""

    version: int | None
    reason: str
    rejected_at: datetime
    raw: dict[str, Any]


_PUT = """
INSERT INTO lot_policy (slot, version, body, at, reason) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (slot) DO UPDATE SET version = excluded.version, body = excluded.body,
    at = excluded.at, reason = excluded.reason
"""


def save(
    conn: sqlite3.Connection, policy: LotPolicy, raw: Mapping[str, Any], at: datetime
) -> PolicyInForce:
    body = dict(raw)
    conn.execute(_PUT, ("in_force", policy.version, json.dumps(body), to_text(at), None))
    return PolicyInForce(policy, body, at)


def refuse(conn: sqlite3.Connection, raw: Any, reason: str, at: datetime) -> RejectedPolicy:
    body = dict(raw) if isinstance(raw, Mapping) else {"value": raw}
    version = body.get("version")
    version = version if isinstance(version, int) and not isinstance(version, bool) else None
    conn.execute(_PUT, ("rejected", version, json.dumps(body, default=str), to_text(at), reason))
    return RejectedPolicy(version, reason, at, body)


def load(conn: sqlite3.Connection) -> PolicyInForce | None:
    row = conn.execute("SELECT body, at FROM lot_policy WHERE slot = 'in_force'").fetchone()
    if row is None:
        return None
    raw = json.loads(row[0])
    try:
        return PolicyInForce(parse_policy(raw), raw, from_text(row[1]))
    except ProtocolError as exc:
        log.error("the cached lot policy cannot be applied by this agent (%s): ignored", exc)
        return None


def load_rejected(conn: sqlite3.Connection) -> RejectedPolicy | None:
    sql = "SELECT version, reason, at, body FROM lot_policy WHERE slot = 'rejected'"
    row = conn.execute(sql).fetchone()
    if row is None:
        return None
    return RejectedPolicy(row[0], row[1] or "", from_text(row[2]), json.loads(row[3]))
