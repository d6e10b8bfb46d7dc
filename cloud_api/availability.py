"""Which spaces are free for a window: the overlap rule shared by availability and booking.

A booking blocks its space while it is ``confirmed``, or ``pending`` with its hold not yet expired
(an expired hold counts as free even before ``expire_holds`` has run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from cloud_api.models import Booking, BookingStatus, Space

__all__ = [
    "FreeSpace",
    "SpaceFreedom",
    "blocking",
    "free_space_rows",
    "overlapping",
    "space_free_until",
]


def blocking(now: datetime) -> ColumnElement[bool]:
    """SQL condition: the booking still holds its space at ``now``."""
    return or_(
        Booking.status == BookingStatus.CONFIRMED.value,
        and_(
            Booking.status == BookingStatus.PENDING.value,
            or_(Booking.hold_expires_at.is_(None), Booking.hold_expires_at > now),
        ),
    )


def overlapping(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(Booking.start_time < end, Booking.end_time > start)


def _ranges_overlap(start: datetime, end: datetime) -> ColumnElement[bool]:
    """PostgreSQL only: ``overlapping`` restated over active bookings' time ranges, the form the
    GiST indexes (the ``EXCLUDE`` constraint's, and ``ix_bookings_lot_window``) answer; without it
    the planner scans every booking of the lot that starts before ``end``."""
    return and_(
        Booking.status.in_((BookingStatus.PENDING.value, BookingStatus.CONFIRMED.value)),
        func.tstzrange(Booking.start_time, Booking.end_time).op("&&")(func.tstzrange(start, end)),
    )


def _free(
    stmt: Select, lot_id: int, start: datetime, end: datetime, now: datetime, ranges: bool
) -> Select:
    taken = select(Booking.space_id).where(
        Booking.lot_id == lot_id, overlapping(start, end), blocking(now)
    )
    if ranges:
        taken = taken.where(_ranges_overlap(start, end))
    return stmt.where(Space.lot_id == lot_id, Space.active.is_(True), Space.id.not_in(taken))


class FreeSpace(NamedTuple):
    id: int
    label: str
    vehicle_type: str


def free_space_rows(
    session: Session,
    lot_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
    vehicle_type: str | None = None,
) -> list[FreeSpace]:
    """Active spaces of the lot with no blocking booking overlapping [start, end), by id, as
    plain rows (no ORM objects to build: the hot path)."""
    ranges = session.get_bind().dialect.name == "postgresql"
    stmt = _free(select(Space.id, Space.label, Space.vehicle_type), lot_id, start, end, now, ranges)
    if vehicle_type is not None:
        stmt = stmt.where(Space.vehicle_type == vehicle_type)
    return [FreeSpace(*row) for row in session.execute(stmt.order_by(Space.id))]


@dataclass(frozen=True, slots=True)
class SpaceFreedom:
    space_id: int
    free_until: datetime | None  # None: no later booking


def space_free_until(
    session: Session, space_ids: list[int], after: datetime, now: datetime
) -> list[SpaceFreedom]:
    """For each space, the start of its next blocking booking at or after ``after``."""
    if not space_ids:
        return []
    stmt = (
        select(Booking.space_id, func.min(Booking.start_time))
        .where(Booking.space_id.in_(space_ids), Booking.start_time >= after, blocking(now))
        .group_by(Booking.space_id)
    )
    nexts = {sid: start for sid, start in session.execute(stmt)}
    return [SpaceFreedom(sid, nexts.get(sid)) for sid in space_ids]
