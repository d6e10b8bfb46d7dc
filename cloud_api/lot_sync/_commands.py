"""Operator commands to a lot (remote open, resync), written for the relay to publish.

A command is a ``lot_commands`` row (the outbox of the ``commands`` topic) plus an ``event_log``
audit entry, in the caller's transaction. A remote open carries a short ``expires_at``: the relay
never sends it late and the agent refuses it when it arrives late (``docs/protocol.md``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from cloud_api.changes import log_event
from cloud_api.lot_sync._models import LotCommand

__all__ = ["DEFAULT_OPEN_TTL", "issue_open", "issue_resync"]

DEFAULT_OPEN_TTL = timedelta(seconds=60)


def _command_id() -> str:
    return "cmd_" + secrets.token_hex(8)


def issue_open(
    session: Session,
    lot_id: int,
    *,
    lane_id: str,
    actor: str,
    reason: str,
    now: datetime,
    ttl: timedelta = DEFAULT_OPEN_TTL,
) -> LotCommand:
    command = LotCommand(
        command_id=_command_id(),
        lot_id=lot_id,
        kind="open_lane",
        lane_id=lane_id,
        actor=actor,
        reason=reason,
        full=True,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(command)
    log_event(
        session,
        "command.open_lane",
        now,
        lot_id=lot_id,
        command_id=command.command_id,
        lane_id=lane_id,
        actor=actor,
        reason=reason,
    )
    return command


def issue_resync(
    session: Session, lot_id: int, *, actor: str, now: datetime, full: bool = True
) -> LotCommand:
    command = LotCommand(
        command_id=_command_id(),
        lot_id=lot_id,
        kind="resync",
        actor=actor,
        full=full,
        created_at=now,
    )
    session.add(command)
    log_event(
        session,
        "command.resync",
        now,
        lot_id=lot_id,
        command_id=command.command_id,
        actor=actor,
        full=full,
    )
    return command
