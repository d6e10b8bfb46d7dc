"""Commands from the cloud that act on the lot, and the lane health the heartbeat reports
(part of :mod:`gate_agent.sync`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from gate_agent.domain import Direction
from gate_agent.store import Store
from parkgate_protocol import Command, LaneHealth

__all__ = ["RemoteLane", "lane_health", "remote_open"]

log = logging.getLogger(__name__)


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
        store.audit(actor, "remote_open_refused", refusal or "no such lane",
                    lane_id=command.lane_id, detail=detail)  # fmt: skip
        return None
    log.info("remote open of lane %s by %s", lane.lane_id, command.actor)
    try:
        lane.manual_open(actor=actor, reason=command.reason or "remote open")
    except ValueError as exc:
        return f"remote open failed: {exc}"
    return None


def lane_health(
    lanes: Iterable[Any], clock: Callable[[], float] = time.monotonic
) -> list[LaneHealth]:
    """Heartbeat lane entries from ``Lane.status`` (frames, age of the last frame, last error)."""
    now = clock()
    return [
        LaneHealth(
            lane_id=lane.lane_id,
            direction=lane.direction,
            frames=lane.status.frames,
            last_frame_age_s=None
            if lane.status.last_frame_at is None
            else max(0.0, now - lane.status.last_frame_at),
            last_error=(lane.status.last_error or None) and str(lane.status.last_error)[:500],
        )
        for lane in lanes
    ]
