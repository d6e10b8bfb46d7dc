"""Analytics over bookings: occupancy over time, bookings per day, stays, no-shows, revenue."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import Booking

__all__ = ["lot_report", "report_csv"]

MAX_WINDOW = timedelta(days=370)


def lot_report(
    session: Session, lot_id: int, start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    """Figures for bookings overlapping [start, end); occupancy per hour of held bookings."""
    rows = list(
        session.scalars(
            select(Booking).where(
                Booking.lot_id == lot_id, Booking.start_time < end, Booking.end_time > start
            )
        )
    )
    held = [b for b in rows if b.status in ("confirmed", "completed")]
    per_day: Counter[str] = Counter(b.created_at.date().isoformat() for b in rows)
    revenue: dict[str, int] = defaultdict(int)
    for b in held:
        revenue[b.start_time.date().isoformat()] += b.price_cents - b.refunded_cents
    stays = [
        (b.exited_at - b.arrived_at).total_seconds() / 60
        for b in held
        if b.arrived_at and b.exited_at
    ]
    no_shows = [b for b in held if b.arrived_at is None and b.end_time < now]
    early = [b for b in held if b.exited_at and b.exited_at < b.end_time]
    return {
        "parking_lot_id": lot_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "bookings": len(rows),
        "bookings_per_day": dict(sorted(per_day.items())),
        "average_stay_minutes": round(sum(stays) / len(stays), 1) if stays else None,
        "no_shows": len(no_shows),
        "early_exits": len(early),
        "revenue_cents": sum(revenue.values()),
        "revenue_per_day_cents": dict(sorted(revenue.items())),
        "occupancy": _occupancy(held, start, end),
    }


def _occupancy(held: list[Booking], start: datetime, end: datetime) -> list[dict[str, Any]]:
    hour = start.replace(minute=0, second=0, microsecond=0)
    out: list[dict[str, Any]] = []
    while hour < end and len(out) < 24 * 372:
        nxt = hour + timedelta(hours=1)
        n = sum(1 for b in held if b.start_time < nxt and b.end_time > hour)
        out.append({"hour": hour.isoformat(), "occupied": n})
        hour = nxt
    return out


def report_csv(report: dict[str, Any]) -> str:
    """One row per hour: occupancy; plus bookings and revenue of that hour's day."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["hour", "occupied", "bookings_that_day", "revenue_that_day_cents"])
    for row in report["occupancy"]:
        day = row["hour"][:10]
        writer.writerow(
            [
                row["hour"],
                row["occupied"],
                report["bookings_per_day"].get(day, 0),
                report["revenue_per_day_cents"].get(day, 0),
            ]
        )
    return buf.getvalue()
