"""The lot's sync client: MQTT 5 to the broker, HTTP catch-up to the cloud.

:class:`SyncClient` (re-exported by :mod:`gate_agent.sync`) wires the session
(:mod:`~gate_agent.sync._session`), the reservation feed (:mod:`~gate_agent.sync._feed`), the
event outbox (:mod:`~gate_agent.sync._outbox`) and commands (:mod:`~gate_agent.sync._commands`)
together and runs them.

Wire contract: :mod:`parkgate_protocol` (and ``docs/protocol.md``). Three threads:

- the paho network thread (``loop_start``) reconnects by itself with backoff; its callbacks only
  parse and hand work on (``on_message`` → the inbox queue, or the outbox for the cloud's
  ``EventAck``; ``on_publish`` → the outbox);
- ``sync-inbox`` applies reservation changes (:class:`~gate_agent.sync._feed.ReservationFeed`),
  runs catch-ups (at start, after every connect, on a gap, on a ``resync`` command; retried with
  backoff when the cloud is unreachable) and obeys commands;
- ``sync-outbox`` drains the journal (:class:`~gate_agent.sync._outbox.OutboxPublisher`) when woken
  (:meth:`SyncClient.notify`, a lane listener; a PUBACK; a connect) and sends the heartbeat.

The retained ``status`` topic says ``online`` on connect and every heartbeat (with
:func:`gate_agent.lane_health.lane_health` when the app hands it in, the cars inside and the
drive-up visitors among them, and the lot's clock offset measured from the cloud's acks by
:mod:`~gate_agent.sync._clock`, journaled as a ``clock_offset`` health event when it moves),
``offline`` as the last will and on a clean stop. :attr:`SyncClient.connected` is how the lanes
know the lot is partitioned from the cloud (``offline_exit``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from gate_agent.config import SyncConfig
from gate_agent.domain import EventKind, JournalEvent
from gate_agent.store import Store
from gate_agent.sync import _session as session
from gate_agent.sync._clock import ClockOffset
from gate_agent.sync._commands import RemoteLane, first_delivery, remote_open
from gate_agent.sync._dead_letters import DEAD_LETTERS_FILE, DeadLetters
from gate_agent.sync._feed import CatchUpError, ReservationFeed
from gate_agent.sync._outbox import OutboxPublisher
from parkgate_protocol import (
    ChangeKind,
    Command,
    CommandKind,
    LaneHealth,
    ProtocolError,
    ReservationChange,
    Status,
    encode,
    parse_command,
    parse_event_ack,
    parse_reservation_change,
    parse_topic,
)

__all__ = ["SyncClient", "SyncStatus"]

log = logging.getLogger(__name__)

CATCH_UP_BACKOFF_S = (1.0, 60.0)
CLOCK_OFFSET = "clock_offset"  # the health event's reason when the clock offset moves


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """Sync health for the status page."""

    connected: bool = False
    connected_at: datetime | None = None  # of the current (or last) connection
    # the broker granted this connection's subscriptions: pushed changes and commands arrive
    # (a change published between the CONNACK and the SUBACK of a new session is not delivered;
    # the next one's gap, or the catch-up after connecting, fetches it)
    subscribed: bool = False
    last_applied_seq: int = 0
    outbox_depth: int = 0
    inflight: int = 0
    last_catch_up_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    last_error: str | None = None
    dead_letters: int = 0
    clock_offset_s: float | None = None  # the lot's clock minus the cloud's (from acks)


@dataclass(frozen=True, slots=True)
class _CatchUp:
    requested_at: float
    full: bool = False


_Work = ReservationChange | Command | _CatchUp | None


class SyncClient:
    """One lot's MQTT session and catch-up; :meth:`start`, :meth:`stop` (safe twice)."""

    def __init__(
        self,
        config: SyncConfig,
        *,
        lot_id: str,
        store: Store,
        data_dir: Path,
        lanes: Mapping[str, RemoteLane] | None = None,
        lane_health: Callable[[], list[LaneHealth]] | None = None,
        transport: httpx.BaseTransport | None = None,
        keepalive_s: int = 30,
        on_stay_paid: Callable[[str], object] | None = None,
    ) -> None:
        self.config = config
        self.lot_id = lot_id
        self.store = store
        self.lanes = dict(lanes or {})
        self._lane_health = lane_health
        self._keepalive = keepalive_s
        self.dead_letters = DeadLetters(Path(data_dir) / DEAD_LETTERS_FILE)
        self.feed = ReservationFeed(
            store,
            lot_id,
            self.dead_letters,
            cloud_url=config.cloud_url,
            device_token=config.device_token,
            transport=transport,
            on_stay_paid=on_stay_paid,
        )
        self.clock = ClockOffset()
        self.topics = session.lot_topics(lot_id)
        self._client = self._make_client()
        self.outbox = OutboxPublisher(
            store,
            self._publish_event,
            window=config.inflight_window,
            on_bad_event=self._bad_event,
            confirm_timeout_s=config.confirm_timeout_seconds,
        )
        self._inbox: queue.Queue[_Work] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connected = False
        self._subscribed = False
        self._status = SyncStatus(last_applied_seq=self.feed.last_seq)
        self._status_lock = threading.Lock()
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = session.new_client(self.config, self.lot_id, self.topics["status"])
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> SyncClient:
        if self._started:
            return self
        self._started = True
        for name, target in (("sync-inbox", self._run_inbox), ("sync-outbox", self._run_outbox)):
            thread = threading.Thread(target=target, name=f"{name}-{self.lot_id}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._inbox.put(_CatchUp(time.monotonic()))
        session.connect(self._client, self.config, keepalive_s=self._keepalive)
        host, port = self.config.broker_host, self.config.broker_port
        log.info("sync for lot %s: connecting to %s:%d", self.lot_id, host, port)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Say offline (retained), disconnect cleanly and join the threads; safe twice."""
        if not self._started or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        self._inbox.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        if self._connected:
            offline = Status(lot_id=self.lot_id, state="offline", at=datetime.now(UTC))
            session.say_offline(self._client, offline, self.topics["status"], min(timeout_s, 2.0))
        self._client.disconnect()
        self._client.loop_stop()
        self.feed.close()
        self._connected = False
        log.info("sync for lot %s stopped", self.lot_id)

    def notify(self, *_: object) -> None:
        """Something was journaled: wake the publisher (usable as a lane listener)."""
        self._wake.set()

    @property
    def status(self) -> SyncStatus:
        return replace(
            self._status,
            connected=self._connected,
            subscribed=self._connected and self._subscribed,
            last_applied_seq=self.feed.last_seq,
            outbox_depth=self.store.outbox_depth(),
            inflight=self.outbox.inflight,
            last_catch_up_at=self.feed.last_catch_up_at,
            dead_letters=self.dead_letters.count,
            clock_offset_s=self.clock.offset_s,
        )

    @property
    def connected(self) -> bool:
        """The lot's session with the broker is up (False: partitioned from the cloud)."""
        return self._connected

    # -- MQTT callbacks (network thread: hand work on, never block) -----------------------------

    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            self._note_error(f"broker refused the connection: {rc}")
            return
        self._connected = True
        self._subscribed = False
        self._update_status(connected_at=datetime.now(UTC))
        present = flags.session_present
        log.info("sync for lot %s connected (session present: %s)", self.lot_id, present)
        client.subscribe([(self.topics[channel], 1) for channel in session.INBOUND])
        self.outbox.reconnected()  # the broker may have lost what it accepted but never delivered
        client.publish(self.topics["status"], encode(self._online()), qos=1, retain=True)
        self._inbox.put(_CatchUp(time.monotonic()))
        self._wake.set()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _p: Any) -> None:
        self._connected = False
        self._subscribed = False
        if not self._stopping.is_set():
            log.warning("sync for lot %s disconnected (%s); reconnecting", self.lot_id, rc)

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, codes: Any, _p: Any) -> None:
        refused = [code for code in codes if code.is_failure]
        for code in refused:
            self._note_error(f"subscription refused: {code}")
        self._subscribed = not refused

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, rc: Any, _p: Any) -> None:
        self.outbox.acknowledged(mid, not rc.is_failure, delivered=session.delivered(rc))
        self._wake.set()

    def _on_message(self, _c: mqtt.Client, _ud: Any, message: mqtt.MQTTMessage) -> None:
        try:
            lot_id, channel = parse_topic(message.topic)
            if lot_id != self.lot_id:
                raise ProtocolError("wrong_lot", "message for another lot")
            if channel == "reservations":
                self._inbox.put(parse_reservation_change(bytes(message.payload)))
            elif channel == "commands":
                self._inbox.put(parse_command(bytes(message.payload)))
            elif channel == "acks":
                ack = parse_event_ack(bytes(message.payload))
                if ack.lot_id != self.lot_id:
                    raise ProtocolError("wrong_lot", "ack payload lot_id differs from the topic's")
                self.outbox.confirmed(ack.event_ids)
                self._measure_clock(ack.acked_at)
                self._wake.set()
            else:
                raise ProtocolError("bad_topic", f"lots do not consume {channel}")
        except ProtocolError as exc:
            self.dead_letters.add(f"mqtt:{message.topic}", str(exc), bytes(message.payload))

    def _measure_clock(self, cloud_at: datetime) -> None:
        offset = self.clock.observe(datetime.now(UTC), cloud_at)
        if offset is None:
            return
        log.warning("lot %s: clock is %.1f s off the cloud's", self.lot_id, offset)
        event = JournalEvent(
            lot_id=self.lot_id,
            kind=EventKind.HEALTH,
            reason=CLOCK_OFFSET,
            detail={"clock_offset_s": round(offset, 3)},
        )
        self.store.journal(event)

    # -- the inbox thread -----------------------------------------------------------------------

    def _run_inbox(self) -> None:
        retry_in: float | None = None
        pending_full = False
        last_started = float("-inf")
        while True:
            try:
                work = self._inbox.get(timeout=retry_in)
            except queue.Empty:
                work = _CatchUp(time.monotonic(), full=pending_full)
            if work is None:
                return
            if isinstance(work, _CatchUp):
                if work.requested_at <= last_started and not work.full:
                    continue  # an earlier request's catch-up already started after this one
                last_started = time.monotonic()
                if self._catch_up(full=work.full or pending_full):
                    retry_in, pending_full = None, False
                else:
                    retry_in = min(
                        (retry_in or CATCH_UP_BACKOFF_S[0] / 2) * 2, CATCH_UP_BACKOFF_S[1]
                    )
                    pending_full = pending_full or work.full
            elif isinstance(work, ReservationChange):
                self._offer(work)
            else:
                self._obey(work)

    def _offer(self, change: ReservationChange) -> None:
        before = self._policy_state()
        try:
            outcome = self.feed.offer(change)
        except ProtocolError as exc:
            self.dead_letters.add("mqtt:reservations", str(exc), encode(change))
            return
        if outcome == "gap":
            self._inbox.put(_CatchUp(time.monotonic()))
        elif outcome == "snapshot":
            self._inbox.put(_CatchUp(time.monotonic(), full=True))
        elif outcome == "applied" and change.kind is not ChangeKind.SNAPSHOT:
            log.debug("applied change %d (%s)", change.seq, change.kind.value)
        self._tell_policy_change(before)

    def _catch_up(self, *, full: bool) -> bool:
        before = self._policy_state()
        try:
            self.feed.catch_up(full=full)
        except (CatchUpError, ProtocolError) as exc:
            self._note_error(f"catch-up failed: {exc}")
            return False
        finally:
            self._tell_policy_change(before)
        return True

    def _policy_state(self) -> tuple[int | None, str | None]:
        held = self.store.policy
        return (None if held is None else held.version, self.store.policy_problem())

    def _tell_policy_change(self, before: tuple[int | None, str | None]) -> None:
        """A policy applied or refused: say so in the status now, not at the next heartbeat."""
        if self._policy_state() != before:
            self._heartbeat()

    def _obey(self, command: Command) -> None:
        if not first_delivery(command, self.store):
            return
        if command.kind is CommandKind.RESYNC:
            log.info("resync requested (command %s)", command.command_id)
            self._inbox.put(_CatchUp(time.monotonic(), full=command.full))
            return
        self._remote_open(command)

    def _remote_open(self, command: Command) -> None:
        error = remote_open(command, self.lanes, self.store)
        if error is not None:
            self._note_error(error)
        self._wake.set()  # the manual open journaled an event (or an audit row): publish it

    # -- the outbox thread ----------------------------------------------------------------------

    def _run_outbox(self) -> None:
        period = self.config.heartbeat_seconds
        next_beat = time.monotonic() + period
        wait: float = period
        while not self._stopping.is_set():
            self._wake.wait(timeout=max(0.0, wait))
            self._wake.clear()
            if self._stopping.is_set():
                return
            pause = self.outbox.pump(self._connected)
            now = time.monotonic()
            if now >= next_beat:
                self._heartbeat()
                next_beat = now + period
            wait = min(next_beat - now, pause if pause is not None else period)

    def _publish_event(self, payload: bytes) -> int | None:
        info = self._client.publish(self.topics["events"], payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._note_error(f"publish failed: {mqtt.error_string(info.rc)}")
            return None
        return info.mid  # NO_CONN: paho keeps it and sends it after the reconnect

    def _bad_event(self, event: JournalEvent, exc: ProtocolError) -> None:
        self.dead_letters.add("journal", f"event {event.event_id}: {exc}", repr(event.kind))
        self.store.mark_confirmed([event.event_id])  # never publishable; keep it from blocking

    def _online(self) -> Status:
        lanes = self._lane_health() if self._lane_health is not None else []
        cars, drive_ups = self.store.inside_counts()
        return Status(
            lot_id=self.lot_id,
            state="online",
            at=datetime.now(UTC),
            outbox_depth=self.store.outbox_depth(),
            last_applied_seq=self.feed.last_seq,
            policy_version=None if self.store.policy is None else self.store.policy.version,
            policy_problem=self.store.policy_problem(),
            clock_offset_s=self.clock.offset_s,
            cars_inside=cars,
            drive_up_inside=drive_ups,
            lanes=lanes,
        )

    def _heartbeat(self) -> None:
        if not self._connected:
            return
        self._client.publish(self.topics["status"], encode(self._online()), qos=1, retain=True)
        self._update_status(last_heartbeat_at=datetime.now(UTC))

    def _note_error(self, message: str) -> None:
        log.warning("sync for lot %s: %s", self.lot_id, message)
        self._update_status(last_error=message)

    def _update_status(self, **changes: Any) -> None:
        with self._status_lock:
            self._status = replace(self._status, **changes)
