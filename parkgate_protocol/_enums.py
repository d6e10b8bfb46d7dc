"""The wire enums: the values both sides write and read. Each side's own types use these.

The gate agent's domain re-exports :class:`Direction`, :class:`ReservationStatus`,
:class:`ListKind` and :class:`GateEventKind` (as its journal's event kind); the cloud's booking
status is :class:`ReservationStatus`. A value added here is a protocol change
(``docs/protocol.md``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AccessCategory",
    "AntiPassbackMode",
    "ChangeKind",
    "CommandKind",
    "Direction",
    "GateEventKind",
    "ListKind",
    "OfflineExit",
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
    POLICY = "policy"  # ``policy`` is the lot's new policy (raw; the gate checks it can apply it)
    LISTS_REPLACED = "lists_replaced"  # a bulk change: fetch a snapshot over HTTP (no payload)
    STAY_PAID = "stay_paid"  # ``stay_payment``: a stay (a car inside) is paid through a moment
    ACCESS_KEYS = "access_keys"  # ``access_keys``: the lot's booking-code keys (replace all)


class GateEventKind(StrEnum):
    """What a lane journaled; the agent's journal uses these values as its event kinds."""

    ENTRY = "entry"
    EXIT = "exit"
    DENIED = "denied"
    MANUAL_OPEN = "manual_open"
    HEALTH = "health"
    BARRIER_FAULT = "barrier_fault"
    HELP_REQUESTED = "help_requested"  # a driver pressed the lane's help button


class CommandKind(StrEnum):
    OPEN_LANE = "open_lane"  # operator opens a lane remotely (audited on both sides)
    RESYNC = "resync"  # catch up now; ``full`` asks for a snapshot


class AntiPassbackMode(StrEnum):
    HARD = "hard"  # a plate recorded inside cannot enter again
    SOFT = "soft"  # it can, but the event is flagged
    OFF = "off"


class OfflineExit(StrEnum):
    """What an exit lane does for a car that owes money while the lot cannot reach the cloud."""

    HOLD = "hold"  # keep the barrier shut; the driver pays at the pay station or calls for help
    OPEN_AND_BILL_LATER = "open_and_bill_later"  # open, journal the amount, the cloud bills


class AccessCategory(StrEnum):
    STAFF = "staff"
    RESIDENT = "resident"
    PERMIT = "permit"
    BLOCKED = "blocked"
