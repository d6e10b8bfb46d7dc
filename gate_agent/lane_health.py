"""The lanes' health as the lot's heartbeat reports it (``Status.lanes`` on the wire).

Read from each :class:`~gate_agent.lane.Lane`'s live ``status``; the composition root
(:mod:`gate_agent.app`) hands :func:`lane_health` to the sync client, which calls it for every
heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from gate_agent.help_desk import HelpDesk
from gate_agent.lane import Lane
from parkgate_protocol import LaneHealth

__all__ = ["lane_health"]

ERROR_CHARS = 500  # a lane's last error is cut to this on the wire


def lane_health(
    lanes: Iterable[Lane],
    clock: Callable[[], float] = time.monotonic,
    help_desk: HelpDesk | None = None,
) -> list[LaneHealth]:
    """Heartbeat lane entries from ``Lane.status`` (frames, age of the last frame, last error)
    and, with a help desk, since when a driver has been waiting for help."""
    now = clock()
    return [_health(lane, now, help_desk) for lane in lanes]


def _health(lane: Lane, now: float, help_desk: HelpDesk | None) -> LaneHealth:
    status = lane.status
    age = None if status.last_frame_at is None else max(0.0, now - status.last_frame_at)
    error = str(status.last_error)[:ERROR_CHARS] if status.last_error else None
    return LaneHealth(
        lane_id=lane.lane_id,
        direction=lane.direction,
        frames=status.frames,
        last_frame_age_s=age,
        last_error=error,
        help_requested_at=None if help_desk is None else help_desk.pending(lane.lane_id),
    )
