"""``/analytics``: per-lot figures for operators of the lot and admins, as JSON or CSV."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from cloud_api.analytics import MAX_WINDOW, lot_report, report_csv
from cloud_api.auth import can_manage_lot
from cloud_api.deps import ApiError, Caller, Db, LotId, Now
from cloud_api.models import Lot, Role
from cloud_api.schemas import Problem, Timestamp

__all__ = ["router"]

router = APIRouter(prefix="/analytics", tags=["analytics"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": Problem} for c in (401, 404, 422)}


def _report(db: Any, user: Any, lot_id: int, start: Any, end: Any, now: Any) -> dict[str, Any]:
    lot = db.get(Lot, lot_id)
    if lot is None or user.role == Role.DEVICE.value or not can_manage_lot(db, user, lot_id):
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    if end <= start or end - start > MAX_WINDOW:
        raise ApiError(422, "bad_window", "need start < end and at most 370 days")
    return lot_report(db, lot_id, start, end, now)


@router.get(
    "/lots/{lot_id}",
    responses=ERRORS,
    summary="Occupancy per hour, bookings per day, average stay, no-shows, early exits, revenue",
)
def lot_analytics(
    lot_id: LotId, start: Timestamp, end: Timestamp, db: Db, user: Caller, now: Now
) -> dict[str, Any]:
    return _report(db, user, lot_id, start, end, now)


@router.get(
    "/lots/{lot_id}/export.csv",
    response_class=PlainTextResponse,
    responses=ERRORS,
    summary="The same figures as CSV, one row per hour",
)
def lot_analytics_csv(
    lot_id: LotId, start: Timestamp, end: Timestamp, db: Db, user: Caller, now: Now
) -> PlainTextResponse:
    body = report_csv(_report(db, user, lot_id, start, end, now))
    return PlainTextResponse(
        body,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="lot-{lot_id}.csv"'},
    )
