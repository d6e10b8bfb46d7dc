"""The wire enums: the values both sides write and read. Each side's own types use these.

The gate agent's domain re-exports :class:`Direction`, :class:`ReservationStatus`,
:class:`ListKind` and :class:`GateEventKind` (as its journal's event kind); the cloud's booking
status is :class:`ReservationStatus`. A value added here is a protocol change
(``docs/protocol.md``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ChangeKind",
    "CommandKind",
    "Direction",
    "GateEventKind",
    "ListKind",
    "ReservationStatus",
]


class Direction(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


class ReservationStatus(StrEnum):
    PENDING = "pending"  # booked, awaiting payment
    CONFIRMED = "confirmed"  # paid or otherwise guaranteed
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    COMPLETED = "completed"


class ListKind(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class ChangeKind(StrEnum):
    UPSERT = "upsert"  # ``reservation`` is the full new state (created, paid, extended, ...)
    REMOVE = "remove"  # ``reservation_id`` leaves the cache
    LIST_PUT = "list_put"  # ``list_entry`` is added or replaced
    LIST_REMOVE = "list_remove"  # ``list_entry`` (plate + kind) leaves the lists
    SNAPSHOT = "snapshot"  # ``reservations`` (and ``list_entries`` if given) replace everything


class GateEventKind(StrEnum):
    """What a lane journaled; the agent's journal uses these values as its event kinds."""

    ENTRY = "entry"
    EXIT = "exit"
    DENIED = "denied"
    MANUAL_OPEN = "manual_open"
    HEALTH = "health"
    BARRIER_FAULT = "barrier_fault"


class CommandKind(StrEnum):
    OPEN_LANE = "open_lane"  # operator opens a lane remotely (audited on both sides)
    RESYNC = "resync"  # catch up now; ``full`` asks for a snapshot
