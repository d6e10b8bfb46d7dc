"""Lot queries: search by area, free spaces now, availability of a window (pure of HTTP).

Drive-up cars inside (no booking, as the lot last counted them in its status heartbeat) take
spaces too: a lot with N of them offers N fewer spaces now, and N fewer car spaces for a window
starting within :data:`DRIVE_UP_HORIZON` (never below zero).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api.availability import FreeSpace, blocking, free_space_rows, space_free_until
from cloud_api.lot_sync import LotStatus
from cloud_api.models import Booking, Lot, LotPrice, Space
from cloud_api.policies import current_policy
from parkgate_protocol import price_stay

__all__ = [
    "DRIVE_UP_HORIZON",
    "availability",
    "drive_ups_inside",
    "free_now",
    "haversine_km",
    "lot_view",
    "search_lots",
]

DRIVE_UP_HORIZON = timedelta(hours=24)  # drive-up stays are priced by the day; most end sooner


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(min(1.0, math.sqrt(a)))


def free_now(session: Session, lot_ids: list[int], now: datetime) -> dict[int, int]:
    """Active spaces without a blocking booking covering ``now``, per lot."""
    if not lot_ids:
        return {}
    totals = dict(
        session.execute(
            select(Space.lot_id, func.count())
            .where(Space.lot_id.in_(lot_ids), Space.active.is_(True))
            .group_by(Space.lot_id)
        ).all()
    )
    busy = dict(
        session.execute(
            select(Booking.lot_id, func.count(func.distinct(Booking.space_id)))
            .where(
                Booking.lot_id.in_(lot_ids),
                Booking.start_time <= now,
                Booking.end_time > now,
                blocking(now),
            )
            .group_by(Booking.lot_id)
        ).all()
    )
    inside = drive_ups_inside(session, lot_ids)
    return {
        lid: max(0, int(totals.get(lid, 0)) - int(busy.get(lid, 0)) - inside.get(lid, 0))
        for lid in lot_ids
    }


def drive_ups_inside(session: Session, lot_ids: list[int]) -> dict[int, int]:
    """Drive-up cars inside per lot, as each lot last reported (lots that never did: absent)."""
    rows = session.execute(
        select(LotStatus.lot_id, LotStatus.drive_up_inside).where(
            LotStatus.lot_id.in_(lot_ids), LotStatus.drive_up_inside.is_not(None)
        )
    ).all()
    return {lot_id: count or 0 for lot_id, count in rows}


def _prices(session: Session, lot_ids: list[int]) -> dict[int, list[LotPrice]]:
    out: dict[int, list[LotPrice]] = {lid: [] for lid in lot_ids}
    for price in session.scalars(
        select(LotPrice).where(LotPrice.lot_id.in_(lot_ids)).order_by(LotPrice.vehicle_type)
    ):
        out[price.lot_id].append(price)
    return out


def lot_view(lot: Lot, prices: list[LotPrice], free: int, distance: float | None) -> dict[str, Any]:
    fields = {
        c: getattr(lot, c)
        for c in (
            "id",
            "name",
            "address",
            "latitude",
            "longitude",
            "country",
            "city",
            "capacity",
            "timezone",
            "currency",
            "early_grace_minutes",
            "late_grace_minutes",
            "overstay_grace_minutes",
            "early_exit_policy",
            "early_exit_fee_cents",
            "hold_minutes",
            "anti_passback",
        )
    }
    fields["prices"] = [
        {
            "vehicle_type": p.vehicle_type,
            "hourly_cents": p.hourly_cents,
            "daily_cap_cents": p.daily_cap_cents,
        }
        for p in prices
    ]
    fields["free_spaces_now"] = free
    fields["distance_km"] = None if distance is None else round(distance, 3)
    return fields


def search_lots(
    session: Session,
    now: datetime,
    *,
    near: tuple[float, float, float] | None = None,
    country: str | None = None,
    city: str | None = None,
    lot_ids: set[int] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    stmt = select(Lot)
    if country:
        stmt = stmt.where(func.upper(Lot.country) == country.upper())
    if city:
        stmt = stmt.where(func.lower(Lot.city) == city.lower())
    if lot_ids is not None:
        stmt = stmt.where(Lot.id.in_(lot_ids))
    if near:
        lat, lon, radius = near
        dlat = radius / 111.0  # bounding box first, exact distance after
        stmt = stmt.where(Lot.latitude.between(lat - dlat, lat + dlat))
    lots = list(session.scalars(stmt.order_by(Lot.id).limit(5000)))
    distances: dict[int, float | None] = {lot.id: None for lot in lots}
    if near:
        lat, lon, radius = near
        distances = {lot.id: haversine_km(lat, lon, lot.latitude, lot.longitude) for lot in lots}
        lots = sorted(
            (x for x in lots if (distances[x.id] or 0) <= radius),
            key=lambda x: distances[x.id] or 0,
        )
    lots = lots[:limit]
    ids = [lot.id for lot in lots]
    free, prices = free_now(session, ids, now), _prices(session, ids)
    return [lot_view(x, prices[x.id], free[x.id], distances[x.id]) for x in lots]


def availability(
    session: Session,
    lot_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
    vehicle_type: str | None,
) -> dict[str, Any] | None:
    """Free spaces per vehicle type for [start, end), the price, and the suggested space.

    ``None`` when the lot does not exist. Three plain-row queries (lot with prices, free spaces,
    next booking of the suggested spaces); no ORM objects are built.
    """
    currency = session.execute(select(Lot.currency).where(Lot.id == lot_id)).scalar()
    if currency is None:
        return None
    tariff = current_policy(session, lot_id).tariff
    prices = tariff.vehicles
    spaces = free_space_rows(session, lot_id, start, end, now, vehicle_type)
    types = sorted(
        {vehicle_type} if vehicle_type else set(prices) | {s.vehicle_type for s in spaces}
    )
    first: dict[str, FreeSpace] = {}
    counts: dict[str, int] = dict.fromkeys(types, 0)
    for space in spaces:
        first.setdefault(space.vehicle_type, space)
        counts[space.vehicle_type] = counts.get(space.vehicle_type, 0) + 1
    if vehicle_type in (None, "car") and start < now + DRIVE_UP_HORIZON and "car" in counts:
        taken = drive_ups_inside(session, [lot_id]).get(lot_id, 0)
        counts["car"] = max(0, counts["car"] - taken)
    until = {
        f.space_id: f.free_until
        for f in space_free_until(session, [s.id for s in first.values()], end, now)
    }
    out = []
    for vtype in types:
        head = first.get(vtype) if counts[vtype] else None  # all taken by drive-ups
        free_until = until.get(head.id) if head else None
        out.append(
            {
                "vehicle_type": vtype,
                "free_spaces": counts[vtype],
                "price_cents": price_stay(tariff, start, end, vtype) if vtype in prices else None,
                "currency": currency,
                "earliest_free_space_id": head.id if head else None,
                "earliest_free_space_label": head.label if head else None,
                "free_until": free_until.isoformat() if free_until else None,
            }
        )
    return {
        "parking_lot_id": lot_id,
        "start_time": start.isoformat(),
        "end_time": end.isoformat(),
        "vehicle_types": out,
    }
