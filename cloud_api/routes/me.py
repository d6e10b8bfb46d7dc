"""``DELETE /me/data``: a customer erases their own personal data (``cloud_api.retention``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from cloud_api.deps import ApiError, Caller, Db, Now, require_role
from cloud_api.models import Role, User
from cloud_api.retention import ErasureRefused, erase_customer
from cloud_api.schemas import Problem

__all__ = ["router"]

router = APIRouter(tags=["privacy"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": Problem} for c in (401, 403, 409)}


class ErasedOut(BaseModel):
    erased: bool
    bookings_kept: int
    vehicles_deleted: int
    gate_events_blanked: int


@router.delete(
    "/me/data",
    response_model=ErasedOut,
    responses=ERRORS,
    summary="Erase the caller's personal data and plates (bookings and payments stay for "
    "accounting, without plate); 409 while a booking is active or money is pending",
)
def erase_my_data(request: Request, db: Db, user: Caller, now: Now) -> ErasedOut:
    require_role(user, Role.CUSTOMER)
    me = db.get(User, user.id)
    if me is None:  # deleted since its token was cached
        raise ApiError(401, "unauthenticated", "unknown, revoked or expired token")
    try:
        done = erase_customer(db, me, now)
    except ErasureRefused as exc:
        raise ApiError(409, exc.reason, exc.detail) from None
    db.commit()
    request.app.state.tokens.forget_user(user.id)
    return ErasedOut(
        erased=True,
        bookings_kept=done.bookings_kept,
        vehicles_deleted=done.vehicles_deleted,
        gate_events_blanked=done.gate_events_blanked,
    )
