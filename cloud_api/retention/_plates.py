"""Plates past their retention period: blanked in gate events and in bookings, keeping every
time, amount and id (accounting and statistics need those, not the plate)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from cloud_api.lot_sync import GateEventRecord
from cloud_api.models import Booking, BookingStatus

__all__ = ["BLANK_PLATE", "blank_booking_plates", "blank_event_plates", "scrub_plates"]

BLANK_PLATE = ""  # bookings.plate is NOT NULL: blanked, not nulled
BATCH = 500


def scrub_plates(value: Any) -> Any:
    """``value`` (a JSON document) without any key that names a plate, at any depth."""
    if isinstance(value, dict):
        return {k: scrub_plates(v) for k, v in value.items() if "plate" not in k.lower()}
    if isinstance(value, list):
        return [scrub_plates(v) for v in value]
    return value


def blank_event_plates(session: Session, cutoff: datetime) -> int:
    """Gate events that occurred before ``cutoff``: plate and payload plates removed."""
    done = 0
    while True:
        rows = session.scalars(
            select(GateEventRecord)
            .where(GateEventRecord.occurred_at < cutoff, GateEventRecord.plate.is_not(None))
            .limit(BATCH)
        ).all()
        for row in rows:
            row.plate = None
            row.payload = scrub_plates(dict(row.payload))
        session.flush()
        done += len(rows)
        if len(rows) < BATCH:
            return done


def blank_booking_plates(session: Session, now: datetime, keep: timedelta) -> int:
    """Bookings whose stay ended more than ``keep`` ago: plate blanked. Not touched: a pending
    booking, a car still inside (arrived, no exit), money still owed."""
    cutoff = now - keep
    ended = func.coalesce(Booking.exited_at, Booking.end_time)
    done = session.execute(
        update(Booking)
        .where(
            Booking.plate != BLANK_PLATE,
            Booking.status != BookingStatus.PENDING.value,
            ended < cutoff,
            or_(Booking.arrived_at.is_(None), Booking.exited_at.is_not(None)),
            Booking.amount_owed_cents == 0,
        )
        .values(plate=BLANK_PLATE)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]
