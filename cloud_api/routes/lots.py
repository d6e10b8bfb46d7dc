"""``/parkingLots``: search by area, one lot, availability of a window; the lot change feed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from cloud_api.auth import can_manage_lot
from cloud_api.cache import AvailabilityCache
from cloud_api.changes import changes_since, reservation_snapshot
from cloud_api.deps import ApiError, Caller, Db, LotId, Now
from cloud_api.lots import availability, search_lots
from cloud_api.models import Booking, Lot, Space
from cloud_api.schemas import AvailabilityOut, LotOut, Problem, Timestamp, VehicleTypeName

__all__ = ["router"]

router = APIRouter(tags=["parking lots"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 422: {"model": Problem}}


@router.get("/parkingLots", response_model=list[LotOut], summary="Lots by area or city")
def list_lots(
    db: Db,
    now: Now,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float, Query(gt=0, le=500)] = 5.0,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    city: Annotated[str | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    if (lat is None) != (lon is None):
        raise ApiError(422, "lat_lon_together", "give both lat and lon, or neither")
    near = (lat, lon, radius_km) if lat is not None and lon is not None else None
    return search_lots(db, now, near=near, country=country, city=city, limit=limit)


@router.get("/parkingLots/{lot_id}", response_model=LotOut, responses=NOT_FOUND)
def get_lot(lot_id: LotId, db: Db, now: Now) -> dict[str, Any]:
    found = search_lots(db, now, lot_ids={lot_id})
    if not found:
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    return found[0]


@router.get(
    "/parkingLots/{lot_id}/availability",
    response_model=AvailabilityOut,
    responses=NOT_FOUND,
    summary="Free spaces per vehicle type for a window, its price, and how long it stays free",
)
def lot_availability(
    request: Request,
    lot_id: LotId,
    start: Timestamp,
    end: Timestamp,
    db: Db,
    now: Now,
    vehicle_type: VehicleTypeName | None = None,
) -> Any:
    if end <= start:
        raise ApiError(422, "end_before_start", "end must be after start")
    cache: AvailabilityCache = request.app.state.cache
    key, cached = cache.lookup(lot_id, f"{start.isoformat()}|{end.isoformat()}|{vehicle_type}")
    if cached is not None:
        return cached
    lot = db.get(Lot, lot_id)
    if lot is None:
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    answer = availability(db, lot, start, end, now, vehicle_type)
    if key is not None:
        cache.store(key, answer)
    return answer


@router.get(
    "/lots/{lot_id}/changes",
    summary="Reservation changes after sequence `since` (gate catch-up); snapshot if too old",
    responses=NOT_FOUND,
)
def lot_changes(
    lot_id: LotId,
    db: Db,
    user: Caller,
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, Any]:
    lot = db.get(Lot, lot_id)
    if lot is None or not can_manage_lot(db, user, lot_id):
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    latest = lot.change_seq
    rows = changes_since(db, lot_id, since, limit)
    if since > latest or (rows and rows[0].seq != since + 1) or latest - since > limit:
        active = db.execute(
            select(Booking, Space.label)
            .join(Space, Space.id == Booking.space_id)
            .where(Booking.lot_id == lot_id, Booking.status.in_(["pending", "confirmed"]))
        ).all()
        return {
            "lot_id": lot_id,
            "latest_seq": latest,
            "snapshot": True,
            "changes": [],
            "reservations": [reservation_snapshot(b, label) for b, label in active],
        }
    return {
        "lot_id": lot_id,
        "latest_seq": latest,
        "snapshot": False,
        "changes": [
            {
                "seq": c.seq,
                "kind": c.kind,
                "reservation": c.payload,
                "created_at": c.created_at.isoformat(),
            }
            for c in rows
        ],
    }
