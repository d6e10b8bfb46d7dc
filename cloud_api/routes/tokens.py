"""Bearer token lifecycle: a caller renews or revokes their own tokens; an admin rotates or
revokes a lot's device token (a stolen or retired gate)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from cloud_api.auth import TokenCache, lot_device, revoke_token, revoke_user_tokens, token_expiry
from cloud_api.auth import issue_token as new_token
from cloud_api.deps import ApiError, BearerToken, Caller, Db, LotId, Now, require_role
from cloud_api.models import Lot, Role
from cloud_api.schemas import Problem

__all__ = ["router"]

router = APIRouter(tags=["tokens"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": Problem} for c in (401, 403, 404, 422)}


class TokenOut(BaseModel):
    token: str = Field(description="bearer token, shown once")
    expires_at: datetime


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Literal["this", "all"] = Field(
        "this", description="this: the token of this request; all: every token of the caller"
    )


class RevokedOut(BaseModel):
    revoked: int


@router.post(
    "/auth/tokens",
    response_model=TokenOut,
    status_code=201,
    responses=ERRORS,
    summary="A new token for the caller (renew before expiry; revoke the old one after)",
)
def renew(request: Request, db: Db, user: Caller, now: Now) -> TokenOut:
    expires = token_expiry(request.app.state.settings, Role(user.role), now)
    token = new_token(db, user, expires_at=expires)
    db.commit()
    return TokenOut(token=token, expires_at=expires)


@router.post(
    "/auth/tokens/revoke",
    response_model=RevokedOut,
    responses=ERRORS,
    summary="Revoke the caller's own token (scope=this) or all of them (scope=all)",
)
def revoke(body: RevokeIn, request: Request, db: Db, user: Caller, token: BearerToken) -> Any:
    cache: TokenCache = request.app.state.tokens  # other processes: within token_cache_seconds
    if body.scope == "all":
        count = revoke_user_tokens(db, user.id)
        db.commit()
        cache.forget_user(user.id)
    else:
        count = revoke_token(db, token)
        db.commit()
        cache.forget(token)
    return RevokedOut(revoked=count)


def _device_of(db: Db, lot_id: int) -> Any:
    if db.get(Lot, lot_id) is None:
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    device = lot_device(db, lot_id)
    if device is None:
        raise ApiError(
            404, "no_device", "the lot has no device account: run cloud-api provision-lot first"
        )
    return device


@router.post(
    "/admin/lots/{lot_id}/device-token",
    response_model=TokenOut,
    status_code=201,
    responses=ERRORS,
    summary="Rotate the lot's device token: a new one (shown once); every older one stops",
)
def rotate_device_token(lot_id: LotId, request: Request, db: Db, user: Caller, now: Now) -> Any:
    require_role(user, Role.ADMIN)
    device = _device_of(db, lot_id)
    revoke_user_tokens(db, device.id)
    expires = token_expiry(request.app.state.settings, Role.DEVICE, now)
    token = new_token(db, device, expires_at=expires)
    db.commit()
    request.app.state.tokens.forget_user(device.id)
    return TokenOut(token=token, expires_at=expires)


@router.post(
    "/admin/lots/{lot_id}/device-token/revoke",
    response_model=RevokedOut,
    responses=ERRORS,
    summary="Revoke every token of the lot's device (the gate is cut off until a rotation)",
)
def revoke_device_token(lot_id: LotId, request: Request, db: Db, user: Caller) -> Any:
    require_role(user, Role.ADMIN)
    device = _device_of(db, lot_id)
    count = revoke_user_tokens(db, device.id)
    db.commit()
    request.app.state.tokens.forget_user(device.id)
    return RevokedOut(revoked=count)
