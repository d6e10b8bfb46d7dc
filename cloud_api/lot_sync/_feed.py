"""A lot's catch-up page (``GET /lots/{lot_id}/changes``): the changes after a sequence number,
or a full snapshot (active reservations, every access-list entry, the policy in force, the
payments of paid stays still inside, the keys booking codes are signed with) when the gate is
too far behind or a bulk list import asked it to fetch one (``lists_replaced``). ``stay_paid``
and ``access_keys`` changes travel like any other change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.access_codes import wire_keys
from cloud_api.changes import change_from_feed, changes_since, reservation_snapshot
from cloud_api.models import Booking, Lot, Space, utcnow
from cloud_api.policies import current_policy, entry_snapshot, find_entries
from cloud_api.stays import paid_stays_inside
from parkgate_protocol import ChangesPage, ReservationSnapshot

__all__ = ["CATCH_UP_HORIZON", "changes_page"]

CATCH_UP_HORIZON = 1000
"""The largest page a gate may ask for: a gate further behind than this gets a snapshot, so
older rows are never served (the retention job trims them once every gate has applied them)."""


def changes_page(
    session: Session,
    lot_id: int,
    *,
    since: int,
    snapshot: bool,
    limit: int,
    now: datetime | None = None,
) -> ChangesPage | None:
    """The changes after ``since`` (at most ``limit``); a snapshot when ``since`` is 0, when
    ``snapshot`` is asked for, or when the feed cannot bridge the gap. None: no such lot."""
    latest = session.execute(select(Lot.change_seq).where(Lot.id == lot_id)).scalar()
    if latest is None:
        return None
    rows = [] if snapshot or since == 0 else changes_since(session, lot_id, since, limit)
    # Read committed (PostgreSQL): a change committed after the head was read is in ``rows``
    # but beyond ``latest``; the page stops at the head it read, the next one serves the rest.
    rows = [row for row in rows if row.seq <= latest]
    behind = since > latest or latest - since > limit or (rows and rows[0].seq != since + 1)
    if snapshot or since == 0 or behind:
        return _snapshot(session, lot_id, latest, utcnow() if now is None else now)
    return ChangesPage(
        lot_id=str(lot_id),
        snapshot=False,
        changes=[
            change_from_feed(lot_id, c.seq, c.kind, dict(c.payload), c.created_at) for c in rows
        ],
        next_since=rows[-1].seq if rows else since,
        latest_seq=latest,
    )


def _snapshot(session: Session, lot_id: int, latest: int, now: datetime) -> ChangesPage:
    # the head is read before the bookings: the snapshot holds at least the state at
    # ``latest`` (a later change is re-applied harmlessly by its seq)
    active = session.execute(
        select(Booking, Space.label)
        .join(Space, Space.id == Booking.space_id)
        .where(Booking.lot_id == lot_id, Booking.status.in_(["pending", "confirmed"]))
    ).all()
    return ChangesPage(
        lot_id=str(lot_id),
        snapshot=True,
        reservations=[
            ReservationSnapshot.model_validate(reservation_snapshot(b, label))
            for b, label in active
        ],
        list_entries=[entry_snapshot(e) for e in find_entries(session, lot_id)],
        policy=current_policy(session, lot_id).to_wire(),
        stay_payments=paid_stays_inside(session, lot_id),
        access_keys=wire_keys(session, lot_id, now),
        next_since=latest,
        latest_seq=latest,
    )
