"""``/lots/{lot_id}/policy`` and ``/lots/{lot_id}/access-list``: what a lot's gates obey, set by
the lot's operators and admins (others: 403, or 404 for a lot they do not manage).

Every change is pushed to the lot on its change feed and written to the lot's audit log
(``GET /lots/{lot_id}/audit``) in the same transaction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cloud_api.auth import can_manage_lot
from cloud_api.deps import ApiError, Caller, Db, LotId, Now, require_role
from cloud_api.errors import InvalidRequest
from cloud_api.lot_sync import LotStatus
from cloud_api.models import Lot, Role, User
from cloud_api.plates import normalise_plate
from cloud_api.policies import (
    AccessListEntry,
    EntryIn,
    ImportMode,
    StaleVersion,
    add_entry,
    audit_trail,
    conflicts_of,
    current_policy,
    entry_snapshot,
    export_csv,
    find_entries,
    import_entries,
    parse_csv,
    remove_entry,
    set_policy,
)
from cloud_api.schemas import Problem
from parkgate_protocol import POLICY_SCHEMA, LotPolicy

__all__ = ["router"]

router = APIRouter(tags=["lot policy and access lists"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": Problem} for c in (401, 403, 404, 422)}
_READ_ONLY = {"version", "schema"}  # in a GET's policy; accepted back when they match
_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


def _managed_lot(db: Session, user: User, lot_id: int) -> Lot:
    require_role(user, Role.ADMIN, Role.OPERATOR)
    lot = db.get(Lot, lot_id)
    if lot is None or not can_manage_lot(db, user, lot_id):
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    return lot


def _field_errors(reason: str, errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"reason": reason, "detail": errors}, status_code=422)


def _policy_answer(db: Session, lot_id: int, policy: LotPolicy) -> JSONResponse:
    status = db.get(LotStatus, lot_id)
    gate = {
        "state": status.state if status else None,
        "reported_at": status.at.isoformat() if status and status.at else None,
        "policy_version": status.policy_version if status else None,
        "policy_problem": status.policy_problem if status else None,
    }
    out_of_date = gate["policy_version"] != policy.version or gate["policy_problem"] is not None
    body = {
        "lot_id": lot_id,
        "version": policy.version,
        "policy": policy.to_wire(),
        "gate": gate,
        "out_of_date": out_of_date,
    }
    return JSONResponse(body, headers={"ETag": f'"{policy.version}"'})


@router.get(
    "/lots/{lot_id}/policy",
    responses=ERRORS,
    summary="The lot's policy in force (ETag: its version) and whether the lot's gate has it",
)
def get_policy(lot_id: LotId, db: Db, user: Caller) -> JSONResponse:
    _managed_lot(db, user, lot_id)
    return _policy_answer(db, lot_id, current_policy(db, lot_id))


def _expected_version(if_match: str | None) -> int:
    if if_match is None:
        raise ApiError(428, "if_match_required", 'send If-Match: "<version>" (GET gives the ETag)')
    found = _IF_MATCH.match(if_match)
    if found is None:
        raise ApiError(412, "stale_version", 'If-Match must be "<version>"')
    return int(found.group(1))


def _policy_fields(body: dict[str, Any], expected: int) -> tuple[dict[str, Any], list[Any]]:
    """The body without its read-only fields, and errors for missing or mismatched ones."""
    errors: list[dict[str, Any]] = []
    if "version" in body and body["version"] != expected:
        errors.append({"loc": ["body", "version"], "msg": "version is given by If-Match"})
    if "schema" in body and body["schema"] != POLICY_SCHEMA:
        errors.append({"loc": ["body", "schema"], "msg": f"this server writes {POLICY_SCHEMA}"})
    fields = {k: v for k, v in body.items() if k not in _READ_ONLY}
    required = {(f.alias or name) for name, f in LotPolicy.model_fields.items()} - _READ_ONLY
    for name in sorted(required - set(fields)):
        errors.append({"loc": ["body", name], "msg": "Field required (a PUT sends every field)"})
    return fields, errors


@router.put(
    "/lots/{lot_id}/policy",
    responses={**ERRORS, 412: {"model": Problem}, 428: {"model": Problem}},
    summary="Replace the lot's policy (every field; If-Match: the version it replaces); the new "
    "version is pushed to the lot",
)
def put_policy(
    lot_id: LotId,
    db: Db,
    user: Caller,
    now: Now,
    body: Annotated[dict[str, Any], Body(description="A LotPolicy without its version")],
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> JSONResponse:
    _managed_lot(db, user, lot_id)
    expected = _expected_version(if_match)
    fields, errors = _policy_fields(body, expected)
    if errors:
        return _field_errors("invalid_policy", errors)
    try:
        policy, _diff = set_policy(
            db, lot_id, fields, actor=user, now=now, expected_version=expected
        )
    except ValidationError as exc:
        db.rollback()
        found = [{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return _field_errors("invalid_policy", found)
    except StaleVersion as exc:
        db.rollback()
        raise ApiError(412, exc.reason, exc.detail) from None
    db.commit()
    return _policy_answer(db, lot_id, policy)


# -- access lists -------------------------------------------------------------------------------


def _entry_out(entry: AccessListEntry, conflicts: list[str]) -> dict[str, Any]:
    kind = "deny" if conflicts else entry.kind
    return {
        **entry_snapshot(entry).model_dump(mode="json"),
        "conflicts": conflicts,
        "effective": kind,
    }


@router.post(
    "/lots/{lot_id}/access-list",
    status_code=201,
    responses=ERRORS,
    summary="Add an allow or deny entry; where an allow and a deny of a plate overlap, deny wins "
    "(`conflicts` names the other entries, `effective` says what the gate does)",
)
def post_entry(lot_id: LotId, body: EntryIn, db: Db, user: Caller, now: Now) -> dict[str, Any]:
    _managed_lot(db, user, lot_id)
    added = add_entry(db, lot_id, body, actor=user, now=now)
    db.commit()
    return _entry_out(added.entry, added.conflicts)


CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


@router.get(
    "/lots/{lot_id}/access-list",
    response_model=None,
    responses={**ERRORS, **CSV_ANSWER},
    summary="The lot's entries (JSON, with each entry's conflicts); with Accept: text/csv every "
    "entry as CSV in the import's format (the export)",
)
def get_entries(
    request: Request,
    lot_id: LotId,
    db: Db,
    user: Caller,
    plate: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10**7)] = 0,
) -> dict[str, Any] | Response:
    _managed_lot(db, user, lot_id)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(export_csv(db, lot_id), media_type="text/csv; charset=utf-8")
    try:
        norm = normalise_plate(plate) if plate is not None else None
    except InvalidRequest as exc:
        raise ApiError(422, exc.reason, exc.detail) from None
    entries = find_entries(db, lot_id, norm)
    by_plate: dict[str, list[AccessListEntry]] = defaultdict(list)
    for entry in entries:
        by_plate[entry.plate].append(entry)
    page = entries[offset : offset + limit]
    return {
        "lot_id": lot_id,
        "total": len(entries),
        "entries": [_entry_out(e, conflicts_of(e, by_plate[e.plate])) for e in page],
    }


@router.delete(
    "/lots/{lot_id}/access-list/{entry_id}",
    status_code=204,
    responses=ERRORS,
    summary="Remove an entry (pushed to the lot as list_remove)",
)
def delete_entry(
    lot_id: LotId,
    entry_id: Annotated[str, Path(min_length=1, max_length=40)],
    db: Db,
    user: Caller,
    now: Now,
) -> Response:
    _managed_lot(db, user, lot_id)
    if remove_entry(db, lot_id, entry_id, actor=user, now=now) is None:
        raise ApiError(404, "entry_not_found", f"no entry {entry_id} at lot {lot_id}")
    db.commit()
    return Response(status_code=204)


def _import(
    db: Session, user: User, lot_id: int, text: str, mode: ImportMode, now: Any
) -> JSONResponse:
    _managed_lot(db, user, lot_id)
    entries, errors = parse_csv(text)
    if errors:
        return _field_errors("invalid_rows", [e.as_dict() for e in errors])
    result = import_entries(db, lot_id, entries, mode, actor=user, now=now)
    db.commit()
    return JSONResponse(
        {"mode": result.mode.value, "added": result.added, "removed": result.removed}
    )


@router.post(
    "/lots/{lot_id}/access-list/import",
    responses=ERRORS,
    summary="Import entries from CSV (text/csv): all rows or none (422 lists the rows' errors); "
    "mode=add keeps the lot's entries, mode=replace removes them; pushed as one lists_replaced",
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def import_csv(
    request: Request,
    lot_id: LotId,
    db: Db,
    user: Caller,
    now: Now,
    mode: ImportMode = ImportMode.ADD,
) -> JSONResponse:
    if request.headers.get("content-type", "").split(";")[0].strip() != "text/csv":
        raise ApiError(415, "unsupported_media_type", "send the CSV as Content-Type: text/csv")
    try:
        text = (await request.body()).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_encoding", "the CSV must be UTF-8") from None
    return await run_in_threadpool(_import, db, user, lot_id, text, mode, now)


@router.get(
    "/lots/{lot_id}/audit", responses=ERRORS, summary="Policy and list changes, newest first"
)
def get_audit(
    lot_id: LotId,
    db: Db,
    user: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    _managed_lot(db, user, lot_id)
    return [
        {
            "at": a.created_at.isoformat(),
            "actor": a.actor,
            "actor_id": a.actor_id,
            "action": a.action,
            "detail": a.detail,
        }
        for a in audit_trail(db, lot_id, limit)
    ]
