"""Lot → cloud ingest: gate events and lot status from the broker into the database.

One persistent MQTT 5 session (login and client id ``cloud-ingest``) subscribed to
``parkgate/v1/lots/+/events`` and ``.../+/status``; the broker queues for this session while the
worker restarts, and keeps the subscription across its own restarts. With ``group`` set, the
filters are shared subscriptions (``$share/{group}/…``) so several workers split the load —
Mosquitto 2.0 does not restore shared subscriptions after a broker restart, so until the workers
re-subscribe the broker answers lots with PUBACK 0x10 (no subscribers) and the lots publish
again (the agent's event outbox); see ``docs/scaling.md``. Messages are
acknowledged by hand (paho ``manual_ack``) only after the transaction that stored them committed,
so nothing acknowledged is lost; a redelivered event meets the unique ``event_id`` and is
acknowledged and ignored (stored exactly once).

After that commit the lot gets the cloud's own confirmation: one ``EventAck`` per lot per batch
on ``parkgate/v1/lots/{lot}/acks`` (QoS 1) listing the events stored or already known
(duplicates). The lot's PUBACK only says the broker accepted an event, and a broker crash can lose
accepted events before its next autosave; the lot publishes unconfirmed events again until this
confirmation arrives. Dead-lettered events are not confirmed.

An event whose topic lot differs from its payload's ``lot_id`` is dead-lettered (``wrong_lot``):
a lot cannot post events for another lot even if the broker's ACL were misconfigured. Entry and
exit events are recorded on the booking (``visits.record_arrival`` / ``record_exit``: early-exit
credit, overstay charge, payment and notification through the outbox) and on the car's parking
session (``cloud_api.stays``: the entry opens it by ``stay_id``, the exit closes it, a denied exit
with ``payment_due`` makes it owe); reported times are bounded (``cloud_api.reported_times``).
Anything unparseable goes to ``ingest_dead_letters`` with its reason, and so does a message the
protocol accepts but the database refuses (``unstorable``: a NUL in a string, which PostgreSQL
text and JSON columns reject); the consumer carries on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.errors import Conflict
from cloud_api.lot_sync._models import GateEventRecord, IngestDeadLetter, LotStatus
from cloud_api.lot_sync._mqtt import connect, make_client
from cloud_api.models import Booking, Lot, utcnow
from cloud_api.reported_times import DEFAULT_CLOCK_SKEW
from cloud_api.settings import BrokerSettings
from cloud_api.stays import (
    GatePass,
    close_stay,
    note_payment_due,
    open_stay,
    paid_so_far,
    stay_for_exit,
)
from cloud_api.visits import find_for_plate, record_arrival, record_exit
from parkgate_protocol import (
    MAX_ACK_IDS,
    TOPIC_ROOT,
    EventAck,
    GateEvent,
    GateEventKind,
    ProtocolError,
    encode,
    parse_gate_event,
    parse_status,
    parse_topic,
    shared_subscription,
    topic,
)

__all__ = ["Ingest", "IngestStats", "store_message", "subscription_filters"]

log = logging.getLogger(__name__)

KEEP_PAYLOAD_CHARS = 4096


class _Unstorable(Exception):
    """An event the database refused for another reason than being stored already."""


@dataclass
class IngestStats:
    events: int = 0
    duplicates: int = 0
    statuses: int = 0
    dead_letters: int = 0
    batches: int = 0
    acks: int = 0  # EventAck messages published to lots


@dataclass(frozen=True, slots=True)
class _Received:
    topic: str
    payload: bytes
    mid: int
    qos: int


def store_message(
    session: Session,
    topic: str,
    payload: bytes,
    now: datetime,
    *,
    skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> str:
    """Store one message in ``session`` (the caller commits); returns what happened:
    ``stored:{outcome}``, ``duplicate``, ``status`` or ``dead:{reason}``. Never raises on input.
    ``skew``: how far after ``now`` a reported arrival or exit may be (later: moved, flagged)."""
    return _store(session, topic, payload, now, skew)[0]


def _store(
    session: Session, topic: str, payload: bytes, now: datetime, skew: timedelta
) -> tuple[str, tuple[str, str] | None]:
    """:func:`store_message`'s outcome and, for a stored or duplicate event, (lot, event id)."""
    try:
        lot_text, channel = parse_topic(topic)
        if channel == "events":
            message: Any = parse_gate_event(payload)
        elif channel == "status":
            message = parse_status(payload)
        else:
            raise ProtocolError("bad_topic", f"the cloud does not consume {channel}")
        if message.lot_id != lot_text:
            raise ProtocolError("wrong_lot", "payload lot_id differs from the topic's lot")
        lot_id = int(lot_text) if lot_text.isdigit() else 0
        if lot_id < 1 or lot_id > 2**31 - 1 or session.get(Lot, lot_id) is None:
            raise ProtocolError("unknown_lot", "no such lot in the cloud")
    except ProtocolError as exc:
        _dead_letter(session, topic, exc, payload, now)
        return f"dead:{exc.reason}", None
    try:
        if channel == "status":
            with session.begin_nested():
                _store_status(session, lot_id, message, now)
                session.flush()
            return "status", None
        return _store_event(session, lot_id, message, now, skew), (lot_text, message.event_id)
    except (DataError, _Unstorable) as exc:  # valid to the protocol, not to the database
        if isinstance(exc, DataError):  # e.g. a NUL in a string
            why = f"the database refused a value ({type(exc.orig).__name__})"
        else:
            why = str(exc)
        refused = ProtocolError("unstorable", why)
        _dead_letter(session, topic, refused, payload, now)
        return "dead:unstorable", None


def _dead_letter(
    session: Session, topic: str, exc: ProtocolError, payload: bytes, now: datetime
) -> None:
    text = _storable(payload.decode("utf-8", "replace"))
    session.add(
        IngestDeadLetter(
            topic=topic[:255],
            reason=exc.reason,
            detail=_storable(str(exc))[:2000],
            payload=text[:KEEP_PAYLOAD_CHARS],
            truncated=len(text) > KEEP_PAYLOAD_CHARS,
            received_at=now,
        )
    )
    log.warning("ingest: dead-lettered a message (%s): %s", exc.reason, exc.detail)


def _storable(text: str) -> str:
    """``text`` with NUL characters replaced: PostgreSQL text columns refuse them."""
    return text.replace("\x00", "\ufffd")


def _store_status(session: Session, lot_id: int, status: Any, now: datetime) -> None:
    row = session.get(LotStatus, lot_id) or LotStatus(lot_id=lot_id)
    row.state = status.state
    row.at = status.at
    row.outbox_depth = status.outbox_depth
    row.last_applied_seq = status.last_applied_seq
    if status.state == "online":  # the last will says nothing about the policy
        row.policy_version = status.policy_version
        row.policy_problem = status.policy_problem
        row.cars_inside = status.cars_inside
        row.drive_up_inside = status.drive_up_inside
        row.clock_offset_s = status.clock_offset_s
    row.lanes = [lane.model_dump(mode="json", exclude_none=True) for lane in status.lanes]
    row.received_at = now
    session.add(row)


def _store_event(
    session: Session, lot_id: int, event: GateEvent, now: datetime, skew: timedelta
) -> str:
    record = GateEventRecord(
        event_id=event.event_id,
        lot_id=lot_id,
        lane_id=event.lane_id,
        kind=event.kind.value,
        reason=event.reason,
        reservation_id=event.reservation_id,
        visit_id=event.visit_id,
        plate=event.plate,
        occurred_at=event.occurred_at,
        received_at=now,
        outcome="stored",
        payload=event.model_dump(mode="json", exclude_none=True),
    )
    if _already_stored(session, event.event_id):  # a redelivery: no failed INSERT in the log
        log.debug("ingest: event %s already stored", event.event_id)
        return "duplicate"
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
            record.outcome = _apply_visit(session, lot_id, event, now, skew)
            session.flush()
    except IntegrityError as exc:
        if _already_stored(session, event.event_id):  # a concurrent ingest stored it first
            log.debug("ingest: event %s stored concurrently", event.event_id)
            return "duplicate"
        # another constraint refused the event's effect: never ack it away as a duplicate
        raise _Unstorable(f"a constraint refused it ({type(exc.orig).__name__})") from exc
    return f"stored:{record.outcome}"


def _already_stored(session: Session, event_id: str) -> bool:
    found = session.scalar(
        select(GateEventRecord.event_id).where(GateEventRecord.event_id == event_id)
    )
    return found is not None


def _apply_visit(
    session: Session, lot_id: int, event: GateEvent, now: datetime, skew: timedelta
) -> str:
    """The event's effect on its booking (``visits``) and its stay (``stays``)."""
    held = event.kind is GateEventKind.DENIED and event.reason == "payment_due"
    if event.kind not in (GateEventKind.ENTRY, GateEventKind.EXIT) and not held:
        return "stored"
    booking = _booking_for(session, lot_id, event)
    if booking is not None and booking.lot_id != lot_id:
        log.warning("ingest: event %s names a booking of another lot", event.event_id)
        return "booking_of_other_lot"
    gate_pass = GatePass(
        event_id=event.event_id,
        gate_stay_id=event.stay_id,
        plate=event.plate,
        reason=event.reason,
        occurred_at=event.occurred_at,
        amount_owed_cents=event.amount_owed_cents,
    )
    if held:
        stay = stay_for_exit(session, lot_id, gate_pass, booking)
        if stay is None:
            return "payment_due:no_stay"
        return f"payment_due:{note_payment_due(session, stay, gate_pass, now=now)}"
    try:
        if event.kind is GateEventKind.ENTRY:
            return _entry(session, lot_id, gate_pass, booking, now, skew)
        return _exit(session, lot_id, gate_pass, booking, now, skew)
    except (Conflict, LookupError, ValueError) as exc:  # wrong state, missing price row
        reason = getattr(exc, "reason", type(exc).__name__)
        log.warning(
            "ingest: event %s left booking %s alone: %s",
            event.event_id,
            booking.id if booking else None,
            reason,
        )
        return f"refused:{reason}"[:64]


def _booking_for(session: Session, lot_id: int, event: GateEvent) -> Booking | None:
    if event.reservation_id:
        return session.get(Booking, event.reservation_id, with_for_update=True)
    if event.plate and event.reason not in ("drive_up", "allowlisted"):
        return find_for_plate(session, lot_id, event.plate, event.occurred_at)
    return None


def _entry(
    session: Session,
    lot_id: int,
    gate_pass: GatePass,
    booking: Booking | None,
    now: datetime,
    skew: timedelta,
) -> str:
    if booking is not None:
        record_arrival(session, booking, at=gate_pass.occurred_at, now=now, skew=skew)
    stay = open_stay(session, lot_id, gate_pass, booking, now=now, skew=skew)
    if booking is not None:
        return "arrived"
    return f"stay_opened:{stay.kind}" if stay else "no_booking"


def _exit(
    session: Session,
    lot_id: int,
    gate_pass: GatePass,
    booking: Booking | None,
    now: datetime,
    skew: timedelta,
) -> str:
    stay = stay_for_exit(session, lot_id, gate_pass, booking)
    if stay is None and booking is None and gate_pass.gate_stay_id and gate_pass.plate:
        # the entry never reached the cloud (or came from an older gate): a stay from here
        stay = open_stay(session, lot_id, gate_pass, None, now=now, skew=skew)
    overstay = credit = 0
    refused = None
    if booking is not None:
        try:
            outcome = record_exit(
                session,
                booking,
                at=gate_pass.occurred_at,
                now=now,
                skew=skew,
                stay_paid=paid_so_far(stay),
            )
            overstay, credit = outcome.overstay_cents, outcome.credit_cents
        except Conflict as exc:  # the booking is not confirmed: its stay still ends here
            refused = f"refused:{exc.reason}"
    if stay is not None:
        owed = close_stay(
            session, stay, gate_pass, now=now, skew=skew, booking_overstay_cents=overstay
        )
        if booking is None:
            return f"stay_closed:owes:{owed}" if owed else "stay_closed"
    if booking is None:
        return "no_booking"
    if refused:
        return refused[:64]
    if overstay:
        return "exited:overstay"
    return "exited:credit" if credit else "exited"


def subscription_filters(group: str | None) -> list[str]:
    """The ingest's filters: plain (durable in Mosquitto) or shared by ``group``."""
    if group is None:
        return [f"{TOPIC_ROOT}/+/events", f"{TOPIC_ROOT}/+/status"]
    return [shared_subscription("events", group), shared_subscription("status", group)]


class Ingest:
    """The consumer; :meth:`start`, :meth:`stop` (safe twice)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        broker: BrokerSettings,
        *,
        batch: int = 200,
        client: mqtt.Client | None = None,
        group: str | None = None,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> None:
        self._sessions = sessions
        self._skew = clock_skew
        self._broker = broker
        self._batch = batch
        self.filters = subscription_filters(group or broker.ingest_group)
        self._client = client or make_client(broker, "ingest")
        self._client.manual_ack_set(True)
        self._client.max_inflight_messages_set(batch)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._inbox: queue.Queue[_Received | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.stats = IngestStats()

    def start(self) -> Ingest:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="cloud-ingest", daemon=True)
        self._thread.start()
        connect(self._client, self._broker, persistent=True)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._inbox.put(None)
        self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        log.info("ingest stopped (%s)", self.stats)

    # -- MQTT callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("ingest: broker refused the connection: %s", rc)
            return
        # every connect, even with session present: a broker restart drops shared subscriptions
        client.subscribe([(f, 1) for f in self.filters])
        self.connected.set()
        log.info("ingest connected")

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("ingest disconnected (%s); reconnecting", rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(_Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    # -- the ingest thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._batch:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._inbox.put(None)
                    break
                batch.append(more)
            self._store_batch(batch)

    def _store_batch(self, batch: list[_Received]) -> None:
        while not self._stop.is_set():
            try:
                outcomes, stored = self._commit(batch)
                break
            except OperationalError as exc:  # database busy or down: keep the batch, retry
                log.warning(
                    "ingest: storing %d messages failed (%s); retrying",
                    len(batch),
                    type(exc).__name__,
                )
                time.sleep(1.0)
        else:
            return  # stopping: unacknowledged messages are redelivered to the next session
        self._confirm(stored)
        for received in batch:
            if received.qos > 0:
                self._client.ack(received.mid, received.qos)
        self.stats.batches += 1
        for outcome in outcomes:
            if outcome.startswith("stored"):
                self.stats.events += 1
            elif outcome == "duplicate":
                self.stats.duplicates += 1
            elif outcome == "status":
                self.stats.statuses += 1
            else:
                self.stats.dead_letters += 1

    def _commit(self, batch: list[_Received]) -> tuple[list[str], list[tuple[str, str]]]:
        now = utcnow()
        with self._sessions.begin() as session:
            results = [_store(session, r.topic, r.payload, now, self._skew) for r in batch]
        return [outcome for outcome, _ in results], [key for _, key in results if key]

    def _confirm(self, stored: list[tuple[str, str]]) -> None:
        """Committed: tell each lot which of its events the cloud now holds (QoS 1; if this
        is lost the lot publishes them again and they are confirmed as duplicates)."""
        by_lot: dict[str, dict[str, None]] = defaultdict(dict)
        for lot, event_id in stored:
            by_lot[lot][event_id] = None
        now = utcnow()
        for lot, ids in by_lot.items():
            unique = list(ids)
            for start in range(0, len(unique), MAX_ACK_IDS):
                ack = EventAck(
                    lot_id=lot, event_ids=unique[start : start + MAX_ACK_IDS], acked_at=now
                )
                info = self._client.publish(topic(lot, "acks"), encode(ack), qos=1)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    log.warning(
                        "ingest: ack to lot %s not queued: %s", lot, mqtt.error_string(info.rc)
                    )
                    continue
                self.stats.acks += 1
