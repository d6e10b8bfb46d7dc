"""Encoding and strict parsing of the wire messages.

Every payload is one UTF-8 JSON object with a version field ``v`` (:data:`PROTOCOL_VERSION`).
Parsing is strict (unknown fields, wrong types, naive times are refused) and every failure is one
:class:`ProtocolError` whose ``reason`` is a short code and whose message never echoes input
values (so it is safe to log: no plates).
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import ValidationError

from parkgate_protocol._errors import ProtocolError, describe_validation_error
from parkgate_protocol._messages import (
    PROTOCOL_VERSION,
    ChangesPage,
    Command,
    EventAck,
    GateEvent,
    Message,
    ReservationChange,
    Status,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "encode",
    "parse_changes_page",
    "parse_command",
    "parse_event_ack",
    "parse_gate_event",
    "parse_reservation_change",
    "parse_status",
]

MAX_MESSAGE_BYTES = 256 * 1024  # one MQTT message; a ChangesPage (HTTP) is not bounded by this


# -- encoding and strict parsing ----------------------------------------------------------------

_M = TypeVar("_M", bound=Message)


def encode(message: Message) -> bytes:
    """Compact UTF-8 JSON, absent (None) fields left out; times ISO-8601 with an offset."""
    return message.model_dump_json(exclude_none=True).encode()


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
        raise ProtocolError("invalid", describe_validation_error(exc)) from None


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
