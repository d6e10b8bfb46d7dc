"""Cloud → lot commands (in :mod:`gate_agent.sync`): obeyed once each, remote opens audited.

The broker may redeliver a command (QoS 1, persistent session), so the ids of the last
``RECENT_COMMANDS`` commands are kept in the store's state table (:func:`first_delivery`) and a
redelivered remote open never opens twice, even across a restart. A resync command is the
client's to run (it schedules a catch-up); a remote open is :func:`remote_open`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from gate_agent.domain import Direction
from gate_agent.store import Store
from parkgate_protocol import Command

__all__ = ["COMMANDS_STATE_KEY", "RemoteLane", "first_delivery", "remote_open"]

log = logging.getLogger(__name__)

COMMANDS_STATE_KEY = "sync.recent_commands"
RECENT_COMMANDS = 200  # command ids remembered so a redelivered open does not open twice


def first_delivery(command: Command, store: Store) -> bool:
    """Remember ``command``; False when it was already handled (a redelivery to ignore)."""
    recent: list[str] = list(store.get_state(COMMANDS_STATE_KEY, []))
    if command.command_id in recent:
        log.info("command %s already handled; ignoring the redelivery", command.command_id)
        return False
    store.set_state(COMMANDS_STATE_KEY, [*recent, command.command_id][-RECENT_COMMANDS:])
    return True


class RemoteLane(Protocol):
    """What the sync client needs of a lane (``gate_agent.lane.Lane`` fits)."""

    lane_id: str
    direction: Direction

    def manual_open(self, *, actor: str, reason: str) -> object: ...


def remote_open(command: Command, lanes: Mapping[str, RemoteLane], store: Store) -> str | None:
    """Open a lane for an operator's remote command, audited; returns an error to report, if any.

    A command that expired on its way (the broker queued it while the lot was offline) or names
    an unknown lane is refused and audited, never executed late.
    """
    actor = f"remote:{command.actor}"
    lane = lanes.get(command.lane_id or "")
    refusal = None
    if command.expires_at is not None and command.expires_at <= datetime.now(UTC):
        refusal = "command expired before it arrived"
    elif lane is None:
        refusal = "no such lane"
    if refusal is not None or lane is None:
        log.warning("remote open of lane %s refused: %s", command.lane_id, refusal)
        detail = {"command_id": command.command_id, "asked": command.reason}
        reason = refusal or "no such lane"
        store.audit(actor, "remote_open_refused", reason, lane_id=command.lane_id, detail=detail)
        return None
    log.info("remote open of lane %s by %s", lane.lane_id, command.actor)
    try:
        lane.manual_open(actor=actor, reason=command.reason or "remote open")
    except ValueError as exc:
        return f"remote open failed: {exc}"
    return None
