"""The lot ↔ cloud wire contract: MQTT topics, message models and their versions.

Pure: no IO, no threads, nothing at import time beyond class definitions. Both sides import it
(``gate_agent.sync`` on the lot, the cloud's outbox relay / ingest / changes endpoint), and
``docs/protocol.md`` documents it for everyone else.

Topics (``{lot}`` matches :data:`LOT_ID_PATTERN`)::

    parkgate/v1/lots/{lot}/reservations   cloud → lot   QoS 1   ReservationChange
    parkgate/v1/lots/{lot}/events         lot → cloud   QoS 1   GateEvent
    parkgate/v1/lots/{lot}/status         lot → cloud   QoS 1, retained, last will   Status
    parkgate/v1/lots/{lot}/commands       cloud → lot   QoS 1   Command
    parkgate/v1/lots/{lot}/acks           cloud → lot   QoS 1   EventAck
    GET /lots/{lot}/changes?since=N[&snapshot=true]   lot → cloud (HTTP)   ChangesPage

Every payload is one UTF-8 JSON object with a version field ``v`` (:data:`PROTOCOL_VERSION`).
Parsing is strict (unknown fields, wrong types, naive times are refused) and every failure is one
:class:`ProtocolError` whose ``reason`` is a short code and whose message never echoes input
values (so it is safe to log: no plates). The models live in :mod:`gate_agent.protocol_models`
and are re-exported here.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from gate_agent.protocol_models import (
    LOT_ID_PATTERN,
    MAX_ACK_IDS,
    PROTOCOL_VERSION,
    ChangeKind,
    ChangesPage,
    Command,
    CommandKind,
    EventAck,
    GateEvent,
    GateEventKind,
    LaneHealth,
    ListEntrySnapshot,
    Message,
    ProtocolError,
    ReservationChange,
    ReservationSnapshot,
    Status,
)

__all__ = [
    "CHANNELS",
    "LOT_ID_PATTERN",
    "MAX_ACK_IDS",
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "TOPIC_ROOT",
    "ChangeKind",
    "ChangesPage",
    "Channel",
    "Command",
    "CommandKind",
    "EventAck",
    "GateEvent",
    "GateEventKind",
    "LaneHealth",
    "ListEntrySnapshot",
    "Message",
    "ProtocolError",
    "ReservationChange",
    "ReservationSnapshot",
    "Status",
    "change_from_feed",
    "encode",
    "parse_changes_page",
    "parse_command",
    "parse_event_ack",
    "parse_gate_event",
    "parse_reservation_change",
    "parse_status",
    "parse_topic",
    "shared_subscription",
    "topic",
]

TOPIC_ROOT = "parkgate/v1/lots"
MAX_MESSAGE_BYTES = 256 * 1024  # one MQTT message; a ChangesPage (HTTP) is not bounded by this
Channel = Literal["reservations", "events", "status", "commands", "acks"]
CHANNELS: tuple[Channel, ...] = ("reservations", "events", "status", "commands", "acks")
_LOT_ID = re.compile(LOT_ID_PATTERN)


# -- topics -------------------------------------------------------------------------------------


def _check_lot(lot_id: str) -> str:
    if not isinstance(lot_id, str) or not _LOT_ID.match(lot_id):
        raise ProtocolError("bad_topic", "lot id must be 1-64 letters, digits, '-' or '_'")
    return lot_id


def topic(lot_id: str, channel: Channel) -> str:
    """``parkgate/v1/lots/{lot_id}/{channel}``."""
    if channel not in CHANNELS:
        raise ProtocolError("bad_topic", f"unknown channel {channel!r}")
    return f"{TOPIC_ROOT}/{_check_lot(lot_id)}/{channel}"


def parse_topic(name: str) -> tuple[str, Channel]:
    """``(lot_id, channel)`` of a concrete topic name; ProtocolError for anything else."""
    prefix = TOPIC_ROOT + "/"
    if not name.startswith(prefix):
        raise ProtocolError("bad_topic", f"not under {TOPIC_ROOT}/")
    parts = name[len(prefix) :].split("/")
    if len(parts) != 2:
        raise ProtocolError("bad_topic", "expected {lot_id}/{channel}")
    lot_id, channel = parts
    for known in CHANNELS:
        if channel == known:
            return _check_lot(lot_id), known
    raise ProtocolError("bad_topic", f"unknown channel {channel!r}")


def shared_subscription(channel: Channel, group: str = "cloud") -> str:
    """The cloud workers' filter for one channel of every lot, e.g. ``$share/cloud/…/+/events``."""
    if channel not in CHANNELS:
        raise ProtocolError("bad_topic", f"unknown channel {channel!r}")
    return f"$share/{group}/{TOPIC_ROOT}/+/{channel}"


def change_from_feed(
    lot_id: str | int,
    seq: int,
    kind: str,
    payload: dict[str, Any],
    created_at: datetime | None = None,
) -> ReservationChange:
    """The cloud's ``lot_changes`` row as a wire change.

    Business kinds (``created``, ``paid``, ``cancelled``, ...) carry the reservation's full
    snapshot, so they become ``upsert`` with the business kind as ``cause``; a row whose kind is
    already a :class:`ChangeKind` value is taken as is (its payload is that kind's fields).
    """
    try:
        if kind in ChangeKind._value2member_map_:
            return ReservationChange(lot_id=str(lot_id), seq=seq, kind=ChangeKind(kind),
                                     changed_at=created_at, **payload)  # fmt: skip
        return ReservationChange(
            lot_id=str(lot_id),
            seq=seq,
            kind=ChangeKind.UPSERT,
            cause=kind,
            changed_at=created_at,
            reservation=ReservationSnapshot.model_validate(payload),
        )
    except ValidationError as exc:
        raise ProtocolError("invalid", _describe(exc)) from None


# -- encoding and strict parsing ----------------------------------------------------------------

_M = TypeVar("_M", bound=Message)


def encode(message: Message) -> bytes:
    """Compact UTF-8 JSON, absent (None) fields left out; times ISO-8601 with an offset."""
    return message.model_dump_json(exclude_none=True).encode()


def _describe(exc: ValidationError) -> str:
    """Field paths and messages only: pydantic's inputs (plates) stay out of logs."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _decode(model: type[_M], payload: bytes | str, limit: int | None) -> _M:
    raw = payload.encode() if isinstance(payload, str) else bytes(payload)
    if limit is not None and len(raw) > limit:
        raise ProtocolError("too_large", f"{len(raw)} bytes > {limit}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("bad_json", type(exc).__name__) from None
    if not isinstance(data, dict):
        raise ProtocolError("not_an_object", f"top level is {type(data).__name__}")
    version = data.get("v")
    if version != PROTOCOL_VERSION:
        shown = version if isinstance(version, int) else type(version).__name__
        raise ProtocolError(
            "unsupported_version", f"v={shown}, this side speaks {PROTOCOL_VERSION}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("invalid", _describe(exc)) from None


def parse_reservation_change(payload: bytes | str) -> ReservationChange:
    return _decode(ReservationChange, payload, MAX_MESSAGE_BYTES)


def parse_gate_event(payload: bytes | str) -> GateEvent:
    return _decode(GateEvent, payload, MAX_MESSAGE_BYTES)


def parse_status(payload: bytes | str) -> Status:
    return _decode(Status, payload, MAX_MESSAGE_BYTES)


def parse_command(payload: bytes | str) -> Command:
    return _decode(Command, payload, MAX_MESSAGE_BYTES)


def parse_event_ack(payload: bytes | str) -> EventAck:
    return _decode(EventAck, payload, MAX_MESSAGE_BYTES)


def parse_changes_page(payload: bytes | str) -> ChangesPage:
    return _decode(ChangesPage, payload, None)
