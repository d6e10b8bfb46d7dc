"""``/parkingAccess``: gates that ask online, and report arrival and exit times (bounded like the
gate's events, ``cloud_api.reported_times``; the booking's parking session opens and closes with
them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.access import AccessVerdict, ListWindow, apply_access_list, decide_access
from cloud_api.auth import can_manage_lot
from cloud_api.deps import ApiError, Caller, Db, Now
from cloud_api.errors import InvalidRequest
from cloud_api.models import Booking, Lot, Space, User
from cloud_api.plates import normalise_plate
from cloud_api.policies import current_policy, find_entries
from cloud_api.schemas import AccessAnswer, AccessUpdate, Problem
from cloud_api.stays import GatePass, close_stay, open_stay, paid_so_far, stay_for_exit
from cloud_api.visits import find_for_plate, record_arrival, record_exit

__all__ = ["router"]

router = APIRouter(tags=["gate access"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": Problem} for c in (401, 404, 409, 422)}


def _lot_for(db: Session, user: User, lot_id: int) -> Lot:
    lot = db.get(Lot, lot_id)
    if lot is None or not can_manage_lot(db, user, lot_id):
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    return lot


def _answer(
    db: Session, lot: Lot, plate: str, booking: Booking | None, verdict: AccessVerdict, **extra: int
) -> AccessAnswer:
    label = db.scalar(select(Space.label).where(Space.id == booking.space_id)) if booking else None
    return AccessAnswer(
        allowed=verdict.allowed,
        reason=verdict.reason,
        plate=plate,
        parking_lot_id=lot.id,
        booking_id=booking.id if booking else None,
        status=booking.status if booking else None,
        starts_at=booking.start_time if booking else None,
        ends_at=booking.end_time if booking else None,
        amount_owed_cents=verdict.owed_cents,
        currency=booking.currency if booking else lot.currency,
        space_label=label,
        **extra,
    )


def _plate(raw: str) -> str:
    try:
        return normalise_plate(raw)
    except InvalidRequest as exc:
        raise ApiError(422, exc.reason, exc.detail) from None


@router.get("/parkingAccess", response_model=AccessAnswer, responses=ERRORS)
def get_access(
    db: Db,
    user: Caller,
    now: Now,
    plate: Annotated[str, Query(min_length=1, max_length=32)],
    parking_lot_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
    direction: Literal["entry", "exit"] = "entry",
) -> AccessAnswer:
    lot = _lot_for(db, user, parking_lot_id)
    norm = _plate(plate)
    booking = find_for_plate(db, lot.id, norm, now)
    verdict = decide_access(booking, current_policy(db, lot.id), direction, now)
    windows = [
        ListWindow(e.kind, e.valid_from, e.valid_until) for e in find_entries(db, lot.id, norm)
    ]
    verdict = apply_access_list(verdict, windows, direction, now)
    return _answer(db, lot, norm, booking, verdict)


@router.put(
    "/parkingAccess",
    response_model=AccessAnswer,
    responses=ERRORS,
    summary="Record arrival and/or exit of a plate (gate report)",
)
def put_access(
    body: AccessUpdate, request: Request, db: Db, user: Caller, now: Now
) -> AccessAnswer:
    lot = _lot_for(db, user, body.parking_lot_id)
    norm = _plate(body.plate)
    if body.arrived_at is None and body.exited_at is None:
        raise ApiError(422, "nothing_to_record", "give arrived_at and/or exited_at")
    booking = db.get(Booking, body.booking_id) if body.booking_id else None
    if booking is None or booking.lot_id != lot.id:
        booking = find_for_plate(db, lot.id, norm, now)
    if booking is None:
        raise ApiError(404, "no_reservation", f"no reservation for {norm} at lot {lot.id}")
    skew = timedelta(seconds=request.app.state.settings.stay_clock_skew_seconds)
    credit = overstay = 0
    if body.arrived_at is not None:
        record_arrival(db, booking, at=body.arrived_at, now=now, skew=skew)
        open_stay(db, lot.id, _pass(norm, body.arrived_at), booking, now=now, skew=skew)
    if body.exited_at is not None:
        gate_pass = _pass(norm, body.exited_at)
        stay = stay_for_exit(db, lot.id, gate_pass, booking)
        outcome = record_exit(
            db, booking, at=body.exited_at, now=now, skew=skew, stay_paid=paid_so_far(stay)
        )
        credit, overstay = outcome.credit_cents, outcome.overstay_cents
        if stay is not None:
            close_stay(db, stay, gate_pass, now=now, skew=skew, booking_overstay_cents=overstay)
    db.commit()
    direction = "exit" if body.exited_at else "entry"
    verdict = decide_access(booking, current_policy(db, lot.id), direction, now)
    return _answer(db, lot, norm, booking, verdict, credit_cents=credit, overstay_cents=overstay)


def _pass(plate: str, at: datetime) -> GatePass:
    """A pass reported over HTTP: no event, no lot stay id (the booking ties the stay)."""
    return GatePass(event_id=None, gate_stay_id=None, plate=plate, reason=None, occurred_at=at)
