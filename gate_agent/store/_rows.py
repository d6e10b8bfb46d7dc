"""Row <-> record conversions of :mod:`gate_agent.store` (the records live in
:mod:`gate_agent.domain`).

Times are stored as UTC ISO text (see :func:`to_text`); naive datetimes are refused so a
local-time bug cannot silently shift a reservation window.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gate_agent.domain import (
    AuditEntry,
    Direction,
    EventKind,
    JournalEvent,
    ListEntry,
    ListKind,
    Presence,
    Reservation,
    ReservationStatus,
    StayKind,
    StayPayment,
)

__all__ = [
    "EVENT_COLUMNS",
    "LIST_COLUMNS",
    "PRESENCE_COLUMNS",
    "RESERVATION_COLUMNS",
    "STAY_PAYMENT_COLUMNS",
    "audit_from_row",
    "event_from_row",
    "event_row",
    "from_text",
    "list_entry_from_row",
    "list_entry_key",
    "list_entry_row",
    "opt_text",
    "opt_time",
    "presence_from_row",
    "reservation_from_row",
    "reservation_row",
    "stay_payment_from_row",
    "to_text",
]


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
LIST_COLUMNS = "plate, kind, valid_from, valid_until, note, entry_id, category, lanes"
PRESENCE_COLUMNS = "plate, visit_id, entered_at, reservation_id, kind"
STAY_PAYMENT_COLUMNS = "stay_id, paid_cents, paid_through, currency, payment_id"
EVENT_COLUMNS = (
    "event_id, lot_id, kind, lane_id, direction, visit_id, plate, read_text, confidence, reason, "
    "reservation_id, fuzzy, amount_owed_cents, currency, occurred_at, image_path, detail, stay_id, "
    "sent_at, confirmed_at"
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


def list_entry_key(entry: ListEntry, plate: str) -> str:
    """The row key of a list entry: the cloud's id, else its (normalised) plate and kind."""
    if entry.entry_id is not None:
        return f"id:{entry.entry_id}"
    return f"plate:{entry.kind}:{plate}"


def list_entry_row(entry: ListEntry, plate: str, updated_at: str) -> tuple[object, ...]:
    """``(plate, entry_key, entry_id, kind, category, valid_from, valid_until, note, lanes,
    updated_at)`` with ``plate`` already normalised."""
    return (
        plate,
        list_entry_key(entry, plate),
        entry.entry_id,
        str(entry.kind),
        entry.category,
        opt_text(entry.valid_from),
        opt_text(entry.valid_until),
        entry.note,
        None if entry.lanes is None else json.dumps(list(entry.lanes)),
        updated_at,
    )


def list_entry_from_row(row: tuple[Any, ...]) -> ListEntry:
    plate, kind, valid_from, valid_until, note, entry_id, category, lanes = row
    return ListEntry(
        plate,
        ListKind(kind),
        opt_time(valid_from),
        opt_time(valid_until),
        note,
        entry_id,
        category,
        None if lanes is None else tuple(json.loads(lanes)),
    )


def presence_from_row(row: tuple[Any, ...]) -> Presence:
    plate, visit_id, entered_at, reservation_id, kind = row
    entered = datetime.fromisoformat(entered_at)
    return Presence(plate, visit_id, entered, reservation_id, StayKind(kind))


def stay_payment_from_row(row: tuple[Any, ...]) -> StayPayment:
    stay_id, paid_cents, paid_through, currency, payment_id = row
    return StayPayment(
        stay_id, int(paid_cents), datetime.fromisoformat(paid_through), currency, payment_id
    )


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
        e.stay_id,
    )


def event_from_row(row: tuple[Any, ...]) -> JournalEvent:
    (
        event_id,
        lot_id,
        kind,
        lane_id,
        direction,
        visit_id,
        plate,
        read_text,
        confidence,
        reason,
        reservation_id,
        fuzzy,
        owed,
        currency,
        occurred_at,
        image_path,
        detail,
        stay_id,
        sent_at,
        confirmed_at,
    ) = row
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
        stay_id=stay_id,
    )


def audit_from_row(row: tuple[Any, ...]) -> AuditEntry:
    aid, at, actor, action, reason, lane_id, detail = row
    return AuditEntry(
        aid, datetime.fromisoformat(at), actor, action, reason, lane_id, json.loads(detail)
    )
