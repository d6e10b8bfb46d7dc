"""Drivers' help requests: a press of a lane's help button, until an operator answers it.

A press is journaled (``help_requested``, which also reaches the cloud as an event), shown as an
alarm on the operator's lanes page and in the heartbeat's lane status (``help_requested_at``), and
put on the lane's display ("help is on the way"). The operator answers with the manual open: a
``manual_open`` outcome on that lane clears the request (the desk is a ``Lane`` listener).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from gate_agent.domain import Direction, EventKind, JournalEvent, Reason
from gate_agent.lane import LaneOutcome
from gate_agent.store import Store

__all__ = ["HelpDesk"]

log = logging.getLogger(__name__)


class HelpDesk:
    def __init__(
        self,
        store: Store,
        *,
        lot_id: str,
        directions: Mapping[str, Direction],
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.lot_id = lot_id
        self.directions = dict(directions)
        self._wallclock = wallclock
        self._lock = threading.Lock()
        self._pending: dict[str, datetime] = {}
        self._listeners: list[Callable[[str], object]] = []

    def add_listener(self, listener: Callable[[str], object]) -> None:
        """Called with the lane id after each request is journaled (the display hub)."""
        self._listeners.append(listener)

    def request(self, lane_id: str) -> None:
        """A driver asked for help at ``lane_id`` (the help button's callback)."""
        if lane_id not in self.directions:
            raise KeyError(f"no lane {lane_id!r} in this lot")
        at = self._wallclock()
        with self._lock:
            self._pending.setdefault(lane_id, at)
        self.store.journal(
            JournalEvent(
                lot_id=self.lot_id,
                kind=EventKind.HELP_REQUESTED,
                lane_id=lane_id,
                direction=self.directions[lane_id],
                occurred_at=at,
            )
        )
        log.warning("lane %s: a driver pressed the help button", lane_id)
        for listener in self._listeners:
            listener(lane_id)

    def answered(self, outcome: LaneOutcome) -> None:
        """The ``Lane`` listener: an operator's manual open answers the lane's request."""
        if outcome.decision.reason is Reason.MANUAL_OPEN:
            with self._lock:
                if self._pending.pop(outcome.lane_id, None) is not None:
                    log.info("lane %s: help request answered by a manual open", outcome.lane_id)

    def pending(self, lane_id: str) -> datetime | None:
        """Since when the lane's driver has been waiting for help (None: nobody is)."""
        with self._lock:
            return self._pending.get(lane_id)
