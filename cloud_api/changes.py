"""Per-lot reservation change feed (``lot_changes``), appended with every reservation change.

The sequence number comes from ``lots.change_seq``, bumped by an ``UPDATE ... RETURNING`` in the
same transaction, so it is gap-free and monotonic per lot (the row lock orders writers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_api.models import Booking, EventLog, Lot, LotChange, Space
from parkgate_protocol import (
    ChangeKind,
    ProtocolError,
    ReservationChange,
    ReservationSnapshot,
    describe_validation_error,
)

__all__ = [
    "INFO_BOOKING_COUNTS",
    "INFO_CHANGED_LOTS",
    "INFO_RELAY_WAKE",
    "append_change",
    "change_from_feed",
    "changes_since",
    "log_event",
    "note_sql_change",
    "record_change",
    "reservation_snapshot",
]

# ``Session.info`` notes that after-commit listeners act on; set by after-flush listeners for ORM
# rows, and by ``note_sql_change`` for rows written by SQL functions (``cloud_api.booking_pg``).
INFO_CHANGED_LOTS = "changed_lots"  # set of lot ids → availability cache generations bumped
INFO_RELAY_WAKE = "relay_wake"  # True → the MQTT relay publishes now
INFO_BOOKING_COUNTS = "metrics_bookings"  # [created, cancelled] → Prometheus counters


def note_sql_change(session: Session, lot_id: int, *, bookings_created: int = 0) -> None:
    """Record a change-feed row written by SQL (no ORM object, so no after-flush listener saw
    it): after commit the cache generation is bumped, the relay woken and the metrics counted."""
    session.info.setdefault(INFO_CHANGED_LOTS, set()).add(lot_id)
    session.info[INFO_RELAY_WAKE] = True
    if bookings_created:
        session.info.setdefault(INFO_BOOKING_COUNTS, [0, 0])[0] += bookings_created


def reservation_snapshot(booking: Booking, space_label: str | None) -> dict[str, Any]:
    return {
        "id": booking.id,
        "plate": booking.plate,
        "starts_at": booking.start_time.isoformat(),
        "ends_at": booking.end_time.isoformat(),
        "status": booking.status,
        "amount_owed_cents": booking.amount_owed_cents,
        "currency": booking.currency,
        "space_label": space_label,
    }


def append_change(
    session: Session, lot_id: int, kind: str, payload: dict[str, Any], now: datetime
) -> LotChange:
    """Append one row to the lot's change feed with the lot's next sequence number. ``kind`` is
    a business kind (a reservation snapshot) or a :class:`ChangeKind` value (its fields)."""
    session.flush()
    seq = session.execute(
        update(Lot)
        .where(Lot.id == lot_id)
        .values(change_seq=Lot.change_seq + 1)
        .returning(Lot.change_seq)
    ).scalar_one()
    change = LotChange(lot_id=lot_id, seq=seq, kind=kind, payload=payload, created_at=now)
    session.add(change)
    return change


def record_change(session: Session, booking: Booking, kind: str, now: datetime) -> LotChange:
    """Append the booking's current snapshot to its lot's change feed."""
    session.flush()
    label = session.execute(select(Space.label).where(Space.id == booking.space_id)).scalar()
    return append_change(session, booking.lot_id, kind, reservation_snapshot(booking, label), now)


def changes_since(session: Session, lot_id: int, since: int, limit: int) -> list[LotChange]:
    stmt = (
        select(LotChange)
        .where(LotChange.lot_id == lot_id, LotChange.seq > since)
        .order_by(LotChange.seq)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def log_event(
    session: Session,
    kind: str,
    now: datetime,
    *,
    booking: Booking | None = None,
    lot_id: int | None = None,
    **payload: Any,
) -> None:
    session.add(
        EventLog(
            kind=kind,
            lot_id=booking.lot_id if booking else lot_id,
            booking_id=booking.id if booking else None,
            user_id=booking.user_id if booking else None,
            payload=payload,
            created_at=now,
        )
    )


def change_from_feed(
    lot_id: str | int,
    seq: int,
    kind: str,
    payload: dict[str, Any],
    created_at: datetime | None = None,
) -> ReservationChange:
    """A ``lot_changes`` row as a wire change (the relay's push and the changes endpoint).

    Business kinds (``created``, ``paid``, ``cancelled``, ...) carry the reservation's full
    snapshot, so they become ``upsert`` with the business kind as ``cause``; a row whose kind is
    already a :class:`ChangeKind` value is taken as is (its payload is that kind's fields).
    """
    try:
        if kind in ChangeKind._value2member_map_:
            return ReservationChange(
                lot_id=str(lot_id), seq=seq, kind=ChangeKind(kind), changed_at=created_at, **payload
            )
        return ReservationChange(
            lot_id=str(lot_id),
            seq=seq,
            kind=ChangeKind.UPSERT,
            cause=kind,
            changed_at=created_at,
            reservation=ReservationSnapshot.model_validate(payload),
        )
    except ValidationError as exc:
        raise ProtocolError("invalid", describe_validation_error(exc)) from None
