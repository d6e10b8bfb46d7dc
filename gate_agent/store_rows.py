"""Row shapes of :mod:`gate_agent.store`: the journal and audit records, and SQLite conversions.

Part of the store. Times are stored as UTC ISO text (see :func:`to_text`); naive datetimes are
refused so a local-time bug cannot silently shift a reservation window.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from gate_agent.domain import (
    Decision,
    Direction,
    ListEntry,
    ListKind,
    Presence,
    Reservation,
    ReservationStatus,
)

__all__ = [
    "AuditEntry",
    "EventKind",
    "JournalEvent",
    "from_text",
    "list_entry_from_row",
    "presence_from_row",
    "reservation_from_row",
    "to_text",
]


class EventKind(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"
    DENIED = "denied"
    MANUAL_OPEN = "manual_open"
    HEALTH = "health"
    BARRIER_FAULT = "barrier_fault"


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One journaled lane event; the journal doubles as the outbox to the cloud.

    ``event_id`` is generated when absent and is the cloud's deduplication key. ``occurred_at``
    defaults to the store's clock when journaled. ``plate`` is the matched plate (else the read),
    ``sent_at`` is set by :meth:`Store.mark_sent` (the broker accepted it: PUBACK) and
    ``confirmed_at`` by :meth:`Store.mark_confirmed` (the cloud stored it: an ``EventAck``).
    """

    lot_id: str
    kind: EventKind
    lane_id: str | None = None
    direction: Direction | None = None
    visit_id: str | None = None
    plate: str | None = None
    read_text: str | None = None
    confidence: float | None = None
    reason: str | None = None
    reservation_id: str | None = None
    fuzzy: bool = False
    amount_owed_cents: int = 0
    currency: str = "EUR"
    occurred_at: datetime | None = None
    image_path: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)
    sent_at: datetime | None = None
    confirmed_at: datetime | None = None

    @classmethod
    def for_decision(
        cls,
        decision: Decision,
        *,
        lot_id: str,
        lane_id: str,
        direction: Direction,
        visit_id: str | None,
        occurred_at: datetime | None = None,
        image_path: str | None = None,
    ) -> JournalEvent:
        """The event a lane journals for a decision: entry/exit when it opened, else denied."""
        if decision.open:
            kind = EventKind.ENTRY if direction is Direction.ENTRY else EventKind.EXIT
        else:
            kind = EventKind.DENIED
        return cls(
            lot_id=lot_id,
            kind=kind,
            lane_id=lane_id,
            direction=direction,
            visit_id=visit_id,
            plate=decision.plate,
            read_text=decision.read_text,
            confidence=decision.confidence,
            reason=str(decision.reason),
            reservation_id=decision.reservation_id,
            fuzzy=decision.fuzzy,
            amount_owed_cents=decision.amount_owed_cents,
            currency=decision.currency,
            occurred_at=occurred_at,
            image_path=image_path,
            detail={
                "detail": decision.detail,
                "flags": list(decision.flags),
                "match_reason": decision.match_reason,
            },
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A manual open, presence reset or other operator action."""

    id: int
    at: datetime
    actor: str
    action: str
    reason: str
    lane_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def to_text(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("naive datetime: the store keeps timezone-aware UTC times")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def opt_text(when: datetime | None) -> str | None:
    return None if when is None else to_text(when)


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


def opt_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


RESERVATION_COLUMNS = (
    "id, plate, starts_at, ends_at, status, amount_owed_cents, currency, space_label"
)
LIST_COLUMNS = "plate, kind, valid_from, valid_until, note"
PRESENCE_COLUMNS = "plate, visit_id, entered_at, reservation_id"
EVENT_COLUMNS = (
    "event_id, lot_id, kind, lane_id, direction, visit_id, plate, read_text, confidence, reason, "
    "reservation_id, fuzzy, amount_owed_cents, currency, occurred_at, image_path, detail, sent_at, "
    "confirmed_at"
)


def reservation_row(r: Reservation, updated_at: str) -> tuple[object, ...]:
    return (
        r.id,
        r.plate,
        to_text(r.starts_at),
        to_text(r.ends_at),
        str(r.status),
        r.amount_owed_cents,
        r.currency,
        r.space_label,
        updated_at,
    )


_STATUS = {status.value: status for status in ReservationStatus}


def reservation_from_row(row: tuple[Any, ...]) -> Reservation:
    rid, plate, starts, ends, status, owed, currency, space = row
    return Reservation(
        rid,
        plate,
        datetime.fromisoformat(starts),
        datetime.fromisoformat(ends),
        _STATUS[status],
        owed,
        currency,
        space,
    )


def list_entry_from_row(row: tuple[Any, ...]) -> ListEntry:
    plate, kind, valid_from, valid_until, note = row
    return ListEntry(plate, ListKind(kind), opt_time(valid_from), opt_time(valid_until), note)


def presence_from_row(row: tuple[Any, ...]) -> Presence:
    plate, visit_id, entered_at, reservation_id = row
    return Presence(plate, visit_id, datetime.fromisoformat(entered_at), reservation_id)


def event_row(e: JournalEvent, occurred_at: datetime) -> tuple[object, ...]:
    return (
        e.event_id,
        e.lot_id,
        str(e.kind),
        e.lane_id,
        None if e.direction is None else str(e.direction),
        e.visit_id,
        e.plate,
        e.read_text,
        e.confidence,
        e.reason,
        e.reservation_id,
        int(e.fuzzy),
        e.amount_owed_cents,
        e.currency,
        to_text(e.occurred_at or occurred_at),
        e.image_path,
        json.dumps(e.detail, sort_keys=True),
    )


def event_from_row(row: tuple[Any, ...]) -> JournalEvent:
    (event_id, lot_id, kind, lane_id, direction, visit_id, plate, read_text, confidence,
     reason, reservation_id, fuzzy, owed, currency, occurred_at, image_path, detail,
     sent_at, confirmed_at) = row  # fmt: skip
    return JournalEvent(
        lot_id=lot_id,
        kind=EventKind(kind),
        lane_id=lane_id,
        direction=None if direction is None else Direction(direction),
        visit_id=visit_id,
        plate=plate,
        read_text=read_text,
        confidence=confidence,
        reason=reason,
        reservation_id=reservation_id,
        fuzzy=bool(fuzzy),
        amount_owed_cents=owed,
        currency=currency,
        occurred_at=datetime.fromisoformat(occurred_at),
        image_path=image_path,
        detail=json.loads(detail),
        event_id=event_id,
        sent_at=opt_time(sent_at),
        confirmed_at=opt_time(confirmed_at),
    )


def audit_from_row(row: tuple[Any, ...]) -> AuditEntry:
    aid, at, actor, action, reason, lane_id, detail = row
    return AuditEntry(
        aid, datetime.fromisoformat(at), actor, action, reason, lane_id, json.loads(detail)
    )
