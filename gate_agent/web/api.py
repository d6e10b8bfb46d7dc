"""The agent's JSON API: ``GET /api/status``, ``GET /api/events``, ``POST /api/lanes/{id}/frames``.

Auth: ``Authorization: Bearer <web.api_token>``; the GET routes also accept an operator session.
``GET /healthz`` is open and says only whether the process serves.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile

from gate_agent.domain import EventKind
from gate_agent.web.auth import bearer_ok, current_session
from gate_agent.web.deps import get_ctx, get_lane, web_state
from gate_agent.web.status import event_dict, outcome_dict, status_document
from gate_agent.web.uploads import act_on_photo, read_upload, upload_reason

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()
API_ACTOR = "api-token"  # the audit actor of API requests (one shared bearer token)


def api_operator(request: Request) -> None:
    """Bearer token required (401 without, 403 when wrong)."""
    bearer_ok(request, get_ctx(request).web.api_token)


def api_reader(request: Request) -> None:
    """A logged-in operator session, or the bearer token."""
    if current_session(request).user:
        return
    bearer_ok(request, get_ctx(request).web.api_token)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/api/status", dependencies=[Depends(api_reader)])
def api_status(request: Request) -> dict[str, Any]:
    state = web_state(request)
    return status_document(state.ctx, state.started_at)


@router.get("/api/events", dependencies=[Depends(api_reader)])
def api_events(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    lane_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[EventKind | None, Query()] = None,
) -> dict[str, Any]:
    ctx = get_ctx(request)
    events = ctx.store.events(limit, lane_id=lane_id, kind=kind)
    return {"lot_id": ctx.lot_id, "events": [event_dict(e) for e in events]}


@router.post("/api/lanes/{lane_id}/frames", dependencies=[Depends(api_operator)])
def api_frame(
    request: Request,
    lane_id: str,
    image: Annotated[UploadFile, File()],
    act: Annotated[
        bool, Query(description="false: only say what the lane would decide (no journal, pulse)")
    ] = True,
    reason: Annotated[
        str | None, Query(max_length=500, description="Audit reason when acting")
    ] = None,
) -> dict[str, Any]:
    """Run the lane's full pipeline on the uploaded image as a camera frame and act on it
    (audited as ``photo_upload`` by ``api-token``); ``act=false`` only previews."""
    ctx = get_ctx(request)
    lane = get_lane(request, lane_id)
    photo = read_upload(image, ctx.web)
    if act:
        why = upload_reason(reason)
        outcome = act_on_photo(ctx.store, lane, photo, actor=API_ACTOR, reason=why, via="api")
    else:
        outcome = lane.evaluate_image(photo, act=False)
    log.info("API frame on lane %s: %s", lane_id, outcome.decision.reason.value)
    return outcome_dict(outcome)
