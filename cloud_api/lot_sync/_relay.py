"""Cloud → lot relay: ``lot_changes`` rows and operator commands published over MQTT.

Every reservation change is written to ``lot_changes`` in the same transaction as the booking
change (``cloud_api.changes``); this relay publishes each unrelayed row, in seq order per lot, as
``changes.change_from_feed(...)`` to ``parkgate/v1/lots/{lot}/reservations`` at QoS 1 and sets
``relayed_at`` only when the broker's PUBACK arrives. Pending ``lot_commands`` go the same way to
``.../commands`` (an open whose ``expires_at`` passed before it could be sent is never sent).

Waking: the loop polls every ``poll_interval`` seconds (one indexed query on
``relayed_at IS NULL``) and is woken at once by :meth:`Relay.wake`; :func:`wake_on_commit` hooks
a sessionmaker so every commit that wrote a change wakes the relay when the API runs in the
same process. Resilience: paho reconnects by itself; after every (re)connect the rows that were
in flight are published again (the agent ignores a seq it already applied), and a row whose
PUBACK never came is retried after ``ack_timeout``. Publishing never happens inside a database
transaction, and the network thread's callbacks only queue acknowledgements.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.changes import INFO_RELAY_WAKE, change_from_feed
from cloud_api.lot_sync._models import LotCommand
from cloud_api.lot_sync._mqtt import connect, make_client
from cloud_api.models import LotChange, utcnow
from cloud_api.settings import BrokerSettings
from parkgate_protocol import (
    Command,
    CommandKind,
    ProtocolError,
    encode,
    topic,
)

__all__ = ["Relay", "RelayStats", "wake_on_commit"]

log = logging.getLogger(__name__)


@dataclass
class RelayStats:
    published: int = 0
    acknowledged: int = 0
    republished: int = 0
    commands: int = 0
    expired_commands: int = 0
    bad_rows: int = 0


@dataclass(frozen=True, slots=True)
class _Sent:
    kind: str  # "change" or "command"
    key: int | str  # lot_changes.id or command_id
    at: float


class Relay:
    """Publishes ``lot_changes`` and ``lot_commands``; :meth:`start`, :meth:`stop` (safe twice)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        broker: BrokerSettings,
        *,
        poll_interval: float = 0.05,
        batch: int = 500,
        max_inflight: int = 1000,
        ack_timeout: float = 30.0,
        client: mqtt.Client | None = None,
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self.poll_interval = poll_interval
        self._batch = batch
        self._max_inflight = max_inflight
        self._ack_timeout = ack_timeout
        self._client = client or make_client(broker, "relay")
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._acks: collections.deque[tuple[int, bool]] = collections.deque()
        self._inflight: dict[int, _Sent] = {}  # mid → what it carries (relay thread only)
        self._pending_keys: set[tuple[str, int | str]] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reconnected = threading.Event()
        self._connected = False
        self._thread: threading.Thread | None = None
        self.stats = RelayStats()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Relay:
        if self._thread is not None:
            return self
        connect(self._client, self._broker, persistent=False)
        self._thread = threading.Thread(target=self._run, name="cloud-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        log.info("relay stopped (%s)", self.stats)

    def wake(self, *_: object) -> None:
        """Something was committed: publish now rather than at the next poll."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- MQTT callbacks (network thread: record and wake, nothing else) -------------------------

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("relay: broker refused the connection: %s", rc)
            return
        self._connected = True
        self._reconnected.set()
        self._wake.set()
        log.info("relay connected")

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._connected = False
        if not self._stop.is_set():
            log.warning("relay disconnected (%s); reconnecting", rc)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        self._acks.append((mid, not rc.is_failure))
        self._wake.set()

    # -- the relay thread -----------------------------------------------------------------------

    def _run(self) -> None:
        log.info("relay started (poll every %.0f ms)", self.poll_interval * 1000)
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.run_once()
            except (OSError, ConnectionError) as exc:  # database unreachable: retry next round
                log.warning("relay round failed: %s", exc)
                self._stop.wait(1.0)

    def run_once(self) -> int:
        """Record acknowledgements, then publish what is due; returns how many were published."""
        if self._reconnected.is_set():
            self._reconnected.clear()
            self._forget_inflight("reconnected")
        self._record_acks()
        self._expire_unacked()
        if not self._connected:
            return 0
        room = self._max_inflight - len(self._inflight)
        sent = self._publish_changes(room) if room > 0 else 0
        return sent + self._publish_commands()

    def _forget_inflight(self, why: str) -> None:
        if self._inflight:
            log.info(
                "relay: %d unacknowledged publishes will be sent again (%s)",
                len(self._inflight),
                why,
            )
            self.stats.republished += len(self._inflight)
        self._inflight.clear()
        self._pending_keys.clear()

    def _expire_unacked(self) -> None:
        deadline = time.monotonic() - self._ack_timeout
        stale = [mid for mid, sent in self._inflight.items() if sent.at < deadline]
        for mid in stale:
            sent = self._inflight.pop(mid)
            self._pending_keys.discard((sent.kind, sent.key))
        if stale:
            log.warning(
                "relay: %d publishes unacknowledged for %.0f s; sending again",
                len(stale),
                self._ack_timeout,
            )

    def _record_acks(self) -> None:
        changes: list[int] = []
        commands: list[str] = []
        while self._acks:
            mid, ok = self._acks.popleft()
            sent = self._inflight.pop(mid, None)
            if sent is None:
                continue  # from before a reconnect; the row was (or will be) sent again
            self._pending_keys.discard((sent.kind, sent.key))
            if not ok:
                log.warning("relay: broker refused %s %s; retrying", sent.kind, sent.key)
                continue
            if sent.kind == "change":
                changes.append(int(sent.key))
            else:
                commands.append(str(sent.key))
        if not changes and not commands:
            return
        now = utcnow()
        with self._sessions.begin() as session:
            if changes:
                session.execute(
                    update(LotChange).where(LotChange.id.in_(changes)).values(relayed_at=now)
                )
            if commands:
                session.execute(
                    update(LotCommand)
                    .where(LotCommand.command_id.in_(commands))
                    .values(published_at=now, outcome="published")
                )
        self.stats.acknowledged += len(changes) + len(commands)

    def _send(self, kind: str, key: int | str, name: str, payload: bytes) -> bool:
        info = self._client.publish(name, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("relay: publish of %s %s failed: %s", kind, key, mqtt.error_string(info.rc))
            return False
        self._inflight[info.mid] = _Sent(kind, key, time.monotonic())
        self._pending_keys.add((kind, key))
        return True

    def _publish_changes(self, room: int) -> int:
        with self._sessions.begin() as session:
            rows = session.execute(
                select(
                    LotChange.id,
                    LotChange.lot_id,
                    LotChange.seq,
                    LotChange.kind,
                    LotChange.payload,
                    LotChange.created_at,
                )
                .where(LotChange.relayed_at.is_(None))
                .order_by(LotChange.lot_id, LotChange.seq)
                .limit(min(self._batch, room) + len(self._pending_keys))
            ).all()
        sent = 0
        bad: list[int] = []
        for row_id, lot_id, seq, kind, payload, created_at in rows:
            if ("change", row_id) in self._pending_keys:
                continue
            if sent >= room:
                break
            try:
                change = change_from_feed(lot_id, seq, kind, dict(payload), created_at)
            except ProtocolError as exc:
                # the agent would dead-letter it; it catches up over HTTP on the resulting gap
                log.error("relay: change %s of lot %s breaks the protocol: %s", seq, lot_id, exc)
                bad.append(row_id)
                continue
            if not self._send("change", row_id, topic(str(lot_id), "reservations"), encode(change)):
                break
            sent += 1
        if bad:
            self._mark_bad(bad)
        self.stats.published += sent
        return sent

    def _mark_bad(self, row_ids: list[int]) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(LotChange).where(LotChange.id.in_(row_ids)).values(relayed_at=utcnow())
            )
        self.stats.bad_rows += len(row_ids)

    def _publish_commands(self) -> int:
        now = utcnow()
        with self._sessions.begin() as session:
            pending = list(
                session.scalars(
                    select(LotCommand)
                    .where(LotCommand.published_at.is_(None))
                    .order_by(LotCommand.created_at)
                    .limit(100)
                )
            )
            expired = [c for c in pending if c.expires_at is not None and c.expires_at <= now]
            for command in expired:
                command.published_at, command.outcome = now, "expired"
                log.warning("relay: command %s expired before it could be sent", command.command_id)
            due = [(c.command_id, _wire(c)) for c in pending if c not in expired]
        self.stats.expired_commands += len(expired)
        sent = 0
        for command_id, message in due:
            if ("command", command_id) in self._pending_keys:
                continue
            if self._send(
                "command", command_id, topic(message.lot_id, "commands"), encode(message)
            ):
                sent += 1
        self.stats.commands += sent
        return sent


def _wire(command: LotCommand) -> Command:
    return Command(
        command_id=command.command_id,
        lot_id=str(command.lot_id),
        kind=CommandKind(command.kind),
        issued_at=command.created_at,
        expires_at=command.expires_at,
        lane_id=command.lane_id,
        actor=command.actor,
        reason=command.reason,
        full=command.full,
    )


def wake_on_commit(sessions: sessionmaker[Session], relay: Relay) -> None:
    """Wake ``relay`` after every commit of a session from ``sessions`` that wrote a lot change
    or a command (the API and the relay in one process: no polling delay)."""

    @event.listens_for(sessions, "after_flush")
    def _note(session: Session, _ctx: Any) -> None:
        if any(isinstance(obj, LotChange | LotCommand) for obj in session.new):
            session.info[INFO_RELAY_WAKE] = True

    @event.listens_for(sessions, "after_commit")
    def _wake(session: Session) -> None:
        if session.info.pop(INFO_RELAY_WAKE, False):
            relay.wake()
