"""Lot → cloud: the journal's unsent events published in order, marked sent only on PUBACK.

Private to :mod:`gate_agent.sync`. :class:`OutboxPublisher` keeps at most ``window`` events in
flight (published, not yet acknowledged), tracked by MQTT message id. The MQTT client's network
thread only *records* acknowledgements (:meth:`acknowledged`); the sync thread's :meth:`pump`
hands them to ``Store.mark_sent`` and refills the window from ``Store.unsent_events`` (journal
order). The store keeps sent marks in memory and writes confirmations with its next commit,
so neither costs the SD card a commit of its own (``python -m bench disk_writes``). Keeping
the mid → event_id map on one thread avoids locking against the MQTT client's own locks.

Delivery is at least once: after a reconnect the MQTT client re-sends what was in flight (same
mids), and after a restart the store lists every event the cloud had not confirmed (on disk),
so an event can reach the broker twice; the cloud deduplicates on ``event_id``.

A PUBACK with reason code 0x10 "No matching subscribers" is a *success* code in MQTT 5, but it
means the broker dropped the event: nobody (not even an offline persistent session) subscribes
to our events topic at that instant, e.g. the cloud's ingest has not re-subscribed yet after a
broker restart. Such an event is not marked sent: the outbox pauses briefly and publishes it
again (``NO_SUBSCRIBERS_BACKOFF_S``) until the broker has somewhere to put it.

A PUBACK 0x00 is still only the broker's promise: Mosquitto saves its persistence every
``autosave_interval`` and on a clean stop, so a broker crash can lose a PUBACKed event. The cloud
therefore confirms what it stored (``EventAck`` on the lot's ``acks`` topic; the network thread
records it with :meth:`confirmed`, :meth:`pump` passes it to ``Store.mark_confirmed``). An event the
broker accepted but the cloud has not confirmed within ``confirm_timeout_s``, and every such
event after a (re)connect (:meth:`reconnected`), goes back into the outbox
(``Store.requeue_unconfirmed``) and is published again; the cloud acks duplicates too.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from gate_agent import wire
from gate_agent.domain import JournalEvent
from gate_agent.store import Store
from parkgate_protocol import ProtocolError, encode

__all__ = ["OutboxPublisher"]

log = logging.getLogger(__name__)

Publish = Callable[[bytes], int | None]  # returns the message id, None when it was not accepted
ACK_TIMEOUT_S = 60.0  # connected but no PUBACK this long: forget it and publish it again
REFUSED_BACKOFF_S = (1.0, 60.0)  # broker refused a publish (reason code): pause, doubling
NO_SUBSCRIBERS_BACKOFF_S = (0.25, 5.0)  # PUBACK 0x10: the cloud is not subscribed yet
MAX_CONFIRM_CHECK_S = 5.0  # look for overdue confirmations at least this often


@dataclass(slots=True)
class _InFlight:
    event_id: str
    published_at: float


class OutboxPublisher:
    """Drains the store's outbox through ``publish`` with a bounded in-flight window."""

    def __init__(
        self,
        store: Store,
        publish: Publish,
        *,
        window: int = 20,
        clock: Callable[[], float] = time.monotonic,
        on_bad_event: Callable[[JournalEvent, ProtocolError], None] | None = None,
        confirm_timeout_s: float = 30.0,
    ) -> None:
        if window < 1:
            raise ValueError("the in-flight window must be at least 1")
        self.store = store
        self.window = window
        self._publish = publish
        self._clock = clock
        self._on_bad_event = on_bad_event
        self._inflight: dict[int, _InFlight] = {}
        self._acks: deque[tuple[int, bool, bool]] = deque()  # appended by the network thread
        self._paused_until = 0.0
        self._backoff = REFUSED_BACKOFF_S[0]
        self._undelivered_backoff = NO_SUBSCRIBERS_BACKOFF_S[0]
        self._confirmations: deque[list[str]] = deque()  # EventAck ids, from the network thread
        self._confirm_timeout = timedelta(seconds=confirm_timeout_s)
        self._check_every = min(max(confirm_timeout_s / 4, 0.05), MAX_CONFIRM_CHECK_S)
        self._next_check = 0.0
        self._requeue_all = False
        self.sent_total = 0
        self.undelivered_total = 0  # PUBACKs saying nobody subscribed (published again later)
        self.confirmed_total = 0  # events the cloud confirmed (first time each)
        self.requeued_total = 0  # PUBACKed events published again for want of a confirmation

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def acknowledged(self, mid: int, ok: bool, *, delivered: bool = True) -> None:
        """Record a PUBACK (any thread; deque appends are atomic). ``ok`` False: refused;
        ``delivered`` False: accepted but dropped for want of subscribers (0x10)."""
        self._acks.append((mid, ok, delivered))

    def confirmed(self, event_ids: list[str]) -> None:
        """Record the cloud's confirmation of stored events (any thread)."""
        self._confirmations.append(event_ids)

    def reconnected(self) -> None:
        """The session was (re)established: whatever the broker held unconfirmed may be gone."""
        self._requeue_all = True

    def pump(self, connected: bool) -> float | None:
        """Record PUBACKs (sent) and the cloud's acks (confirmed), put overdue events back in
        the outbox and, when connected, refill the window.

        Returns seconds until a pause ends or the next overdue check (the caller should wake
        by then), else None.
        """
        self._settle()
        self._confirm()
        now = self._clock()
        if not connected:
            return None
        self._requeue_overdue(now)
        if now < self._paused_until:
            return min(self._paused_until, self._next_check) - now
        self._expire(now)
        room = self.window - len(self._inflight)
        if room <= 0:
            return max(0.0, self._next_check - now)
        flying = {f.event_id for f in self._inflight.values()}
        for event in self.store.unsent_events(limit=room + len(flying)):
            if event.event_id in flying:
                continue
            if not self._send(event, now):
                break
            room -= 1
            if room == 0:
                break
        return max(0.0, self._next_check - now)

    def _confirm(self) -> None:
        ids: list[str] = []
        while self._confirmations:
            ids.extend(self._confirmations.popleft())
        if ids:
            self.confirmed_total += self.store.mark_confirmed(ids)

    def _requeue_overdue(self, now: float) -> None:
        if self._requeue_all:
            self._requeue_all = False
            older_than = timedelta(0)
        elif now >= self._next_check:
            older_than = self._confirm_timeout
        else:
            return
        self._next_check = now + self._check_every
        requeued = self.store.requeue_unconfirmed(older_than)
        if requeued:
            self.requeued_total += requeued
            log.warning(
                "%d event(s) accepted by the broker but not confirmed by the cloud; "
                "publishing them again",
                requeued,
            )

    def _send(self, event: JournalEvent, now: float) -> bool:
        try:
            payload = encode(wire.gate_event(event))
        except ProtocolError as exc:  # our own journal row does not fit the contract
            log.error("event %s cannot be encoded: %s", event.event_id, exc)
            if self._on_bad_event is not None:
                self._on_bad_event(event, exc)
            return True
        mid = self._publish(payload)
        if mid is None:
            return False
        self._inflight[mid] = _InFlight(event.event_id, now)
        return True

    def _settle(self) -> None:
        done: list[str] = []
        while self._acks:
            mid, ok, delivered = self._acks.popleft()
            flight = self._inflight.pop(mid, None)
            if flight is None:
                continue  # a status/heartbeat publish, or one we already gave up on
            if ok and delivered:
                done.append(flight.event_id)
                self._backoff = REFUSED_BACKOFF_S[0]
                self._undelivered_backoff = NO_SUBSCRIBERS_BACKOFF_S[0]
            elif ok:
                self._not_delivered(flight.event_id)
            else:
                log.error("broker refused event %s; pausing %.0fs", flight.event_id, self._backoff)
                self._paused_until = self._clock() + self._backoff
                self._backoff = min(self._backoff * 2, REFUSED_BACKOFF_S[1])
        if done:
            self.sent_total += self.store.mark_sent(done)

    def _not_delivered(self, event_id: str) -> None:
        self.undelivered_total += 1
        now = self._clock()
        if now < self._paused_until:
            return  # the rest of a window dropped together: one pause is enough
        pause = self._undelivered_backoff
        log.warning(
            "no subscriber for event %s (PUBACK 0x10); publishing it again in %.2fs",
            event_id,
            pause,
        )
        self._paused_until = now + self._undelivered_backoff
        self._undelivered_backoff = min(self._undelivered_backoff * 2, NO_SUBSCRIBERS_BACKOFF_S[1])

    def _expire(self, now: float) -> None:
        stale = [m for m, f in self._inflight.items() if now - f.published_at > ACK_TIMEOUT_S]
        for mid in stale:
            log.warning("no PUBACK for event %s; publishing it again", self._inflight[mid].event_id)
            del self._inflight[mid]

    def forget_inflight(self) -> None:
        """Drop the in-flight map (the MQTT client was replaced); the store still has them all."""
        self._inflight.clear()
        self._acks.clear()
