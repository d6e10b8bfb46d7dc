"""``/parkingLots``: search by area, one lot, availability of a window; the lot change feed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from cloud_api.auth import can_manage_lot
from cloud_api.cache import AvailabilityCache, NearCache
from cloud_api.deps import ApiError, Caller, Db, LotId, Now
from cloud_api.lot_sync import CATCH_UP_HORIZON, changes_page
from cloud_api.lots import availability, search_lots
from cloud_api.models import Role
from cloud_api.schemas import AvailabilityOut, LotOut, Problem, Timestamp, VehicleTypeName
from parkgate_protocol import encode

__all__ = ["NearCacheHits", "router"]

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


AVAILABILITY_PATH = "/parkingLots/{lot_id}/availability"


class NearCacheHits:
    """ASGI middleware: availability answers found in the process's near cache, sent before
    routing, parameter validation and the endpoint machinery run.

    A body is stored only by :func:`lot_availability`, after validation, under the exact path
    and query string of its request (:func:`_near_key`), so a hit answers the same request bytes
    with the same bytes; anything else goes through FastAPI. Installed inside ``RequestMetrics``
    (``create_app``): it sets ``scope["route"]`` as routing would, so hits count under the route.
    """

    def __init__(self, app: ASGIApp, near: NearCache) -> None:
        self.app, self.near = app, near
        self.route = next(r for r in router.routes if getattr(r, "path", "") == AVAILABILITY_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" and scope["method"] == "GET" else ""
        if path.endswith("/availability"):
            body = self.near.get((path, scope["query_string"]))
            if body is not None:
                scope["route"] = self.route
                headers = [(b"content-length", b"%d" % len(body)), *_NEAR_HEADERS]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


_NEAR_HEADERS = [(b"content-type", b"application/json"), (b"x-cache", b"near")]


def _near_key(request: Request) -> tuple[str, bytes]:
    return request.scope["path"], request.scope["query_string"]


async def lot_availability(
    request: Request,
    lot_id: LotId,
    start: Timestamp,
    end: Timestamp,
    vehicle_type: VehicleTypeName | None = None,
) -> Response:
    """The `X-Cache` response header tells where the answer came from: `near` (this server
    process), `redis` or `db`; cached answers are invalidated by every committed change."""
    if end <= start:
        raise ApiError(422, "end_before_start", "end must be after start")
    near: NearCache = request.app.state.near_cache
    tag = near.tag(lot_id)  # before Redis and the database are read
    query = f"{start.isoformat()}|{end.isoformat()}|{vehicle_type}"
    found = await run_in_threadpool(
        _cached_availability, request.app.state, lot_id, query, start, end, vehicle_type
    )
    if found is None:
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    body, source = found
    near.put(_near_key(request), lot_id, tag, body)
    return Response(body, media_type="application/json", headers={"X-Cache": source})


router.add_api_route(
    AVAILABILITY_PATH,
    lot_availability,
    methods=["GET"],
    response_model=AvailabilityOut,
    responses=NOT_FOUND,
    summary="Free spaces per vehicle type for a window, its price, and how long it stays free",
)


def _cached_availability(
    state: Any,
    lot_id: int,
    query: str,
    start: datetime,
    end: datetime,
    vehicle_type: str | None,
) -> tuple[bytes, str] | None:
    """Redis, else database (then stored in Redis); the body and where it came from."""
    cache: AvailabilityCache = state.cache
    key, cached = cache.lookup(lot_id, query)
    if cached is not None:
        return cached, "redis"
    with state.sessions() as db:
        answer = availability(db, lot_id, start, end, state.clock(), vehicle_type)
    if answer is None:
        return None
    body = AvailabilityOut.model_validate(answer).model_dump_json().encode()  # as response_model
    if key is not None:
        cache.store(key, body)
    return body, "db"


@router.get(
    "/lots/{lot_id}/changes",
    summary="Reservation changes after sequence `since` (gate catch-up, a `ChangesPage` of "
    "docs/protocol.md); a full snapshot when since=0, too far behind, or snapshot=true",
    responses=NOT_FOUND,
)
def lot_changes(
    lot_id: LotId,
    db: Db,
    user: Caller,
    now: Now,
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    snapshot: bool = False,
    limit: Annotated[int, Query(ge=1, le=CATCH_UP_HORIZON)] = 500,
) -> Response:
    """Only the lot's own device account may read its feed (anyone else: 404)."""
    if user.role != Role.DEVICE.value or not can_manage_lot(db, user, lot_id):
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    page = changes_page(db, lot_id, since=since, snapshot=snapshot, limit=limit, now=now)
    if page is None:
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    return Response(encode(page), media_type="application/json")
