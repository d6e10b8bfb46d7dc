"""Admin and operator management: lots, prices, grace rules, spaces, users, hold expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.access_codes import rotate_key
from cloud_api.auth import can_manage_lot, member_lot_ids, token_expiry
from cloud_api.bookings import expire_holds
from cloud_api.deps import ApiError, Caller, Db, LotId, Now, require_role
from cloud_api.lots import search_lots
from cloud_api.models import Lot, LotMember, Role, Space, User
from cloud_api.policies import POLICY_OWNED_COLUMNS, audit, current_policy, set_policy
from cloud_api.schemas import KeyRotated, KeyRotation, LotOut, Problem, VehicleTypeName
from cloud_api.seed import add_lot, add_user
from parkgate_protocol import VehicleTariff
from parkgate_protocol._tariff import MAX_RATE_CENTS

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": Problem} for c in (401, 403, 404, 409, 422)}
Minutes = Annotated[int, Field(ge=0, le=24 * 60)]
Cents = Annotated[int, Field(ge=0, le=10**8)]


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = Field(default=None, max_length=400)
    capacity: int | None = Field(default=None, ge=0, le=100_000)
    early_grace_minutes: Minutes | None = None
    late_grace_minutes: Minutes | None = None
    overstay_grace_minutes: Minutes | None = None
    early_exit_policy: Literal["none", "pro_rata", "whole_hours", "pro_rata_minus_fee"] | None = (
        None
    )
    early_exit_fee_cents: Cents | None = None
    hold_minutes: Annotated[int, Field(ge=1, le=24 * 60)] | None = None
    anti_passback: Literal["hard", "soft", "off"] | None = None


class LotCreate(Rules):
    name: str = Field(min_length=1, max_length=200)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    country: str = Field(min_length=2, max_length=2)
    city: str = Field(min_length=1, max_length=120)
    timezone: str = Field(default="UTC", max_length=64)
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    spaces: dict[VehicleTypeName, Annotated[int, Field(ge=0, le=5000)]] = Field(
        default_factory=dict
    )


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hourly_cents: Annotated[int, Field(ge=0, le=MAX_RATE_CENTS)]
    daily_cap_cents: Annotated[int, Field(ge=0, le=100 * MAX_RATE_CENTS)]


class SpaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=32)
    vehicle_type: VehicleTypeName = "car"
    active: bool = True


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)
    name: str = Field(default="", max_length=200)
    role: Literal["customer", "operator", "admin", "device"] = "customer"
    lot_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(default_factory=list)


class UserCreated(BaseModel):
    id: int
    email: str
    role: str
    token: str = Field(description="bearer token, shown once")


def _managed_lot(db: Session, user: User, lot_id: int) -> Lot:
    lot = db.get(Lot, lot_id)
    if lot is None or not can_manage_lot(db, user, lot_id) or user.role == Role.DEVICE.value:
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    return lot


def _lot_out(db: Session, lot_id: int, now: Any) -> dict[str, Any]:
    return search_lots(db, now, lot_ids={lot_id})[0]


@router.get("/lots", response_model=list[LotOut], summary="Lots the caller manages")
def my_lots(db: Db, user: Caller, now: Now) -> list[dict[str, Any]]:
    require_role(user, Role.ADMIN, Role.OPERATOR)
    ids = None if user.role == Role.ADMIN.value else member_lot_ids(db, user)
    return search_lots(db, now, lot_ids=ids, limit=500)


@router.post("/lots", response_model=LotOut, status_code=201, responses=ERRORS)
def create_lot(body: LotCreate, db: Db, user: Caller, now: Now) -> dict[str, Any]:
    require_role(user, Role.ADMIN)
    fields = body.model_dump(exclude={"spaces"}, exclude_none=True)
    name = fields.pop("name")
    fields["country"] = fields["country"].upper()
    lot = add_lot(db, name, {str(k): v for k, v in body.spaces.items()}, **fields)
    db.commit()
    return _lot_out(db, lot.id, now)


@router.patch(
    "/lots/{lot_id}",
    response_model=LotOut,
    responses=ERRORS,
    summary="Change a lot's details, grace rules, early-exit policy, hold time",
)
def update_lot(lot_id: LotId, body: Rules, db: Db, user: Caller, now: Now) -> dict[str, Any]:
    """Rules the lot's policy owns (graces, anti-passback) become a new policy version, pushed
    to the lot like a ``PUT /lots/{lot_id}/policy``."""
    lot = _managed_lot(db, user, lot_id)
    changes = body.model_dump(exclude_none=True)
    owned = {k: changes.pop(k) for k in POLICY_OWNED_COLUMNS if k in changes}
    for name, value in changes.items():
        setattr(lot, name, value)
    policy = current_policy(db, lot_id)
    if owned and any(getattr(policy, k) != v for k, v in owned.items()):
        set_policy(db, lot_id, {**policy.to_wire(), **owned}, actor=user, now=now)
    db.commit()
    return _lot_out(db, lot.id, now)


@router.put("/lots/{lot_id}/prices/{vehicle_type}", response_model=LotOut, responses=ERRORS)
def set_price(
    lot_id: LotId, vehicle_type: VehicleTypeName, body: PriceIn, db: Db, user: Caller, now: Now
) -> dict[str, Any]:
    """The vehicle type's tariff becomes hourly with a daily cap: a new policy version."""
    _managed_lot(db, user, lot_id)
    policy = current_policy(db, lot_id)
    hourly = VehicleTariff(rate_cents=body.hourly_cents, daily_max_cents=body.daily_cap_cents)
    vehicles = {**policy.tariff.vehicles, vehicle_type: hourly}
    tariff = policy.tariff.model_copy(update={"vehicles": vehicles})
    set_policy(db, lot_id, {**policy.to_wire(), "tariff": tariff}, actor=user, now=now)
    db.commit()
    return _lot_out(db, lot_id, now)


@router.put(
    "/lots/{lot_id}/spaces",
    status_code=200,
    responses=ERRORS,
    summary="Create or update a space by label",
)
def put_space(lot_id: LotId, body: SpaceIn, db: Db, user: Caller) -> dict[str, Any]:
    _managed_lot(db, user, lot_id)
    space = db.scalars(
        select(Space).where(Space.lot_id == lot_id, Space.label == body.label)
    ).first()
    if space is None:
        space = Space(lot_id=lot_id, label=body.label)
        db.add(space)
    space.vehicle_type, space.active = body.vehicle_type, body.active
    db.commit()
    return {
        "id": space.id,
        "label": space.label,
        "vehicle_type": space.vehicle_type,
        "active": space.active,
    }


@router.post("/users", response_model=UserCreated, status_code=201, responses=ERRORS)
def create_user(body: UserIn, db: Db, user: Caller, now: Now, request: Request) -> UserCreated:
    require_role(user, Role.ADMIN)
    if db.scalar(select(User.id).where(User.email == body.email)) is not None:
        raise ApiError(409, "email_taken", "a user with that email exists")
    missing = set(body.lot_ids) - set(db.scalars(select(Lot.id).where(Lot.id.in_(body.lot_ids))))
    if missing:
        raise ApiError(422, "unknown_lot", f"lots {sorted(missing)} do not exist")
    expires = token_expiry(request.app.state.settings, Role(body.role), now)
    seeded = add_user(
        db,
        body.email,
        Role(body.role),
        name=body.name,
        lots=tuple(body.lot_ids),
        token_expires_at=expires,
    )
    db.commit()
    return UserCreated(
        id=seeded.user.id, email=seeded.user.email, role=seeded.user.role, token=seeded.token
    )


@router.post("/lots/{lot_id}/members/{user_id}", status_code=204, responses=ERRORS)
def add_member(lot_id: LotId, user_id: LotId, db: Db, user: Caller) -> None:
    require_role(user, Role.ADMIN)
    if db.get(Lot, lot_id) is None or db.get(User, user_id) is None:
        raise ApiError(404, "not_found", "lot or user not found")
    if db.get(LotMember, (lot_id, user_id)) is None:
        db.add(LotMember(lot_id=lot_id, user_id=user_id))
        db.commit()


@router.post("/expire-holds", summary="Expire unpaid holds now (the app also does it periodically)")
def run_expiry(db: Db, user: Caller, now: Now) -> dict[str, Any]:
    require_role(user, Role.ADMIN)
    expired = expire_holds(db, now)
    db.commit()
    return {"expired": expired}


@router.post(
    "/lots/{lot_id}/access-keys/rotate",
    response_model=KeyRotated,
    responses=ERRORS,
    summary="Rotate the lot's booking-code key (new codes use the new key; old ones still "
    "open until the old key retires)",
)
def rotate_access_key(
    lot_id: LotId, body: KeyRotation, db: Db, user: Caller, now: Now
) -> KeyRotated:
    _managed_lot(db, user, lot_id)
    overlap = timedelta(minutes=body.retire_old_after_minutes)
    kid, retires = rotate_key(db, lot_id, now, overlap)
    detail = {"kid": kid, "old_retires_at": retires.isoformat() if retires else None}
    audit(db, lot_id, user, "access_key.rotated", detail, now)
    db.commit()
    return KeyRotated(kid=kid, old_retires_at=retires)
