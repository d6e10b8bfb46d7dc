"""The outbox's delivery marks kept in memory by :mod:`gate_agent.store` (no SQL here).

Every fsync'd commit costs the SD card at least one 4 KB block, so the two marks that follow a
journaled event are not committed on their own (``python -m bench disk_writes``):

- **sent** (the broker's PUBACK) lives only here. After a restart nothing is marked sent, so
  every unconfirmed event is published again, which the cloud deduplicates on ``event_id``
  (the outbox did the same after every reconnect already).
- **confirmed** (the cloud's ``EventAck``) is applied here at once and written to disk with the
  store's next write transaction, usually the next car's journal commit (:meth:`take` /
  :meth:`settle`), or on its own once ``flush_at`` confirmations are waiting or the store
  closes. A crash before then only means those events are published again and deduplicated.

The journal commit itself (event, presence) stays fsync'd before the barrier pulses: nothing
here holds an event that is not on disk. Thread-safe: lanes, the sync thread and the web server
share one store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Confirmation", "Deliveries"]


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A confirmation waiting for the disk: when the cloud confirmed ``event_id`` and when the
    broker accepted it (the confirmation time when the ack overtook the PUBACK)."""

    event_id: str
    confirmed_at: datetime
    sent_at: datetime


class Deliveries:
    """Sent marks (memory only) and confirmations not yet on disk, by event id."""

    def __init__(self, flush_at: int) -> None:
        self.flush_at = flush_at
        self._lock = threading.Lock()
        self._sent: dict[str, datetime] = {}
        self._confirmed: dict[str, Confirmation] = {}

    def mark_sent(self, unconfirmed_ids: Iterable[str], now: datetime) -> int:
        """``unconfirmed_ids`` (unconfirmed on disk) were PUBACKed; returns how many were new."""
        with self._lock:
            new = [
                eid
                for eid in dict.fromkeys(unconfirmed_ids)
                if eid not in self._sent and eid not in self._confirmed
            ]
            self._sent.update(dict.fromkeys(new, now))
            return len(new)

    def mark_confirmed(self, unconfirmed_ids: Iterable[str], now: datetime) -> int:
        """``unconfirmed_ids`` (unconfirmed on disk) were confirmed by the cloud; returns how many
        were new."""
        with self._lock:
            count = 0
            for eid in dict.fromkeys(unconfirmed_ids):
                if eid in self._confirmed:
                    continue
                sent_at = self._sent.pop(eid, now)
                self._confirmed[eid] = Confirmation(eid, now, sent_at)
                count += 1
            return count

    def requeue(self, sent_before: datetime) -> int:
        """Forget the sent mark of events accepted by ``sent_before`` and still unconfirmed
        (back into the outbox); returns how many."""
        with self._lock:
            overdue = [eid for eid, at in self._sent.items() if at <= sent_before]
            for eid in overdue:
                del self._sent[eid]
            return len(overdue)

    def in_flight(self, event_id: str) -> bool:
        """Sent or confirmed: not the outbox's to publish."""
        with self._lock:
            return event_id in self._sent or event_id in self._confirmed

    def sent_at(self, event_id: str) -> datetime | None:
        with self._lock:
            pending = self._confirmed.get(event_id)
            return pending.sent_at if pending is not None else self._sent.get(event_id)

    def confirmation(self, event_id: str) -> Confirmation | None:
        with self._lock:
            return self._confirmed.get(event_id)

    @property
    def unwritten(self) -> int:
        """Confirmations not on disk yet."""
        with self._lock:
            return len(self._confirmed)

    @property
    def due(self) -> bool:
        """Enough confirmations wait to be worth a commit of their own."""
        return self.unwritten >= self.flush_at

    def take(self) -> list[Confirmation]:
        """The confirmations to write in the transaction being built (kept until :meth:`settle`)."""
        with self._lock:
            return list(self._confirmed.values())

    def settle(self, written: Iterable[Confirmation]) -> None:
        """``written`` are committed: they are the disk's now."""
        with self._lock:
            for confirmation in written:
                if self._confirmed.get(confirmation.event_id) is confirmation:
                    del self._confirmed[confirmation.event_id]
