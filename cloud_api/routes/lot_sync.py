"""Operators and their lots' gates: remote open and resync commands, the lot's last status."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cloud_api.auth import can_manage_lot
from cloud_api.deps import ApiError, Caller, Db, LotId, Now, require_role
from cloud_api.lot_sync import LotCommand, LotStatus, issue_open, issue_resync
from cloud_api.models import Lot, Role, User
from cloud_api.schemas import Problem

__all__ = ["router"]

router = APIRouter(tags=["lot gates"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": Problem} for c in (401, 403, 404, 422)}


class OpenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lane_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    reason: str = Field(min_length=3, max_length=500)
    ttl_seconds: Annotated[int, Field(ge=5, le=300)] = 60


class ResyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full: bool = True


class CommandOut(BaseModel):
    command_id: str
    lot_id: int
    kind: str
    lane_id: str | None
    issued_at: datetime
    expires_at: datetime | None


class StatusOut(BaseModel):
    lot_id: int
    state: str
    at: datetime | None
    outbox_depth: int | None
    last_applied_seq: int | None
    lanes: list[dict[str, Any]]
    received_at: datetime


def _staff_of(db: Db, user: User, lot_id: int) -> None:
    require_role(user, Role.ADMIN, Role.OPERATOR)
    if db.get(Lot, lot_id) is None or not can_manage_lot(db, user, lot_id):
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")


def _out(command: LotCommand) -> CommandOut:
    return CommandOut(
        command_id=command.command_id,
        lot_id=command.lot_id,
        kind=command.kind,
        lane_id=command.lane_id,
        issued_at=command.created_at,
        expires_at=command.expires_at,
    )


@router.post(
    "/lots/{lot_id}/commands/open",
    status_code=202,
    response_model=CommandOut,
    responses=ERRORS,
    summary="Open a lane remotely (audited; refused by the gate after ttl_seconds)",
)
def remote_open(lot_id: LotId, body: OpenRequest, db: Db, user: Caller, now: Now) -> CommandOut:
    _staff_of(db, user, lot_id)
    command = issue_open(
        db,
        lot_id,
        lane_id=body.lane_id,
        actor=user.email,
        reason=body.reason,
        now=now,
        ttl=timedelta(seconds=body.ttl_seconds),
    )
    db.commit()
    return _out(command)


@router.post(
    "/lots/{lot_id}/commands/resync",
    status_code=202,
    response_model=CommandOut,
    responses=ERRORS,
    summary="Ask the lot's gate to catch up now (full: a snapshot)",
)
def resync(lot_id: LotId, body: ResyncRequest, db: Db, user: Caller, now: Now) -> CommandOut:
    _staff_of(db, user, lot_id)
    command = issue_resync(db, lot_id, actor=user.email, now=now, full=body.full)
    db.commit()
    return _out(command)


@router.get(
    "/lots/{lot_id}/gate-status",
    response_model=StatusOut,
    responses=ERRORS,
    summary="The lot gate's last status or heartbeat (online/offline, outbox depth, lanes)",
)
def gate_status(lot_id: LotId, db: Db, user: Caller) -> StatusOut:
    _staff_of(db, user, lot_id)
    row = db.get(LotStatus, lot_id)
    if row is None:
        raise ApiError(404, "no_status", "the lot's gate has not reported yet")
    return StatusOut(
        lot_id=row.lot_id,
        state=row.state,
        at=row.at,
        outbox_depth=row.outbox_depth,
        last_applied_seq=row.last_applied_seq,
        lanes=row.lanes,
        received_at=row.received_at,
    )
