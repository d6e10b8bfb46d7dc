"""MQTT topic names and lot ids."""

from __future__ import annotations

import re
from typing import Literal

from parkgate_protocol._errors import ProtocolError

__all__ = [
    "CHANNELS",
    "LOT_ID_PATTERN",
    "TOPIC_ROOT",
    "Channel",
    "check_lot_id",
    "is_lot_id",
    "parse_topic",
    "shared_subscription",
    "topic",
]

TOPIC_ROOT = "parkgate/v1/lots"
LOT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
Channel = Literal["reservations", "events", "status", "commands", "acks"]
CHANNELS: tuple[Channel, ...] = ("reservations", "events", "status", "commands", "acks")
_LOT_ID = re.compile(LOT_ID_PATTERN)


def is_lot_id(text: object) -> bool:
    """True for 1-64 letters, digits, ``-`` or ``_`` (a lot id is also an MQTT topic level and
    the broker login, so nothing else is allowed)."""
    return isinstance(text, str) and _LOT_ID.match(text) is not None


def check_lot_id(lot_id: str) -> str:
    if not is_lot_id(lot_id):
        raise ProtocolError("bad_topic", "lot id must be 1-64 letters, digits, '-' or '_'")
    return lot_id


def topic(lot_id: str, channel: Channel) -> str:
    """``parkgate/v1/lots/{lot_id}/{channel}``."""
    if channel not in CHANNELS:
        raise ProtocolError("bad_topic", f"unknown channel {channel!r}")
    return f"{TOPIC_ROOT}/{check_lot_id(lot_id)}/{channel}"


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
            return check_lot_id(lot_id), known
    raise ProtocolError("bad_topic", f"unknown channel {channel!r}")


def shared_subscription(channel: Channel, group: str = "cloud") -> str:
    """The cloud workers' filter for one channel of every lot, e.g. ``$share/cloud/…/+/events``."""
    if channel not in CHANNELS:
        raise ProtocolError("bad_topic", f"unknown channel {channel!r}")
    return f"$share/{group}/{TOPIC_ROOT}/+/{channel}"
