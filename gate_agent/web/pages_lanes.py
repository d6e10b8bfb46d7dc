"""The lanes page: live frame, last read and decision, barrier, camera health, manual open and
commissioning uploads."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from gate_agent.lane import Lane, LaneOutcome
from gate_agent.web.auth import check_csrf, current_session, require_operator
from gate_agent.web.deps import Operator, get_ctx, get_lane, render, web_state
from gate_agent.web.evidence import save_evidence
from gate_agent.web.render import ago, esc, form_csrf, hhmmss
from gate_agent.web.status import encode_jpeg, lane_snapshot
from gate_agent.web.uploads import act_on_photo, read_upload, upload_reason

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()
ACTING = [Depends(require_operator), Depends(check_csrf)]  # 401 before 403

NO_FRAME_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360"><rect width="100%" '
    'height="100%" fill="#333"/><text x="50%" y="50%" fill="#ccc" font-size="28" '
    'text-anchor="middle" font-family="sans-serif">no camera frame</text></svg>'
)


def _decision_html(decision: dict[str, Any] | None) -> str:
    if decision is None:
        return '<dd class="decision">none yet</dd>'
    verdict = "OPEN" if decision["open"] else "DENIED"
    cls = "open" if decision["open"] else "denied"
    extra = f" · booking {esc(decision['booking_id'])}" if decision["booking_id"] else ""
    detail = f" · {esc(decision['detail'])}" if decision["detail"] else ""
    matched = decision.get("match_reason") or "—"
    return (
        f'<dd class="decision {cls}"><strong>{verdict}</strong> '
        f'<code class="reason">{esc(decision["reason"])}</code> '
        f"{esc(decision['plate'] or '')}{extra}{detail}"
        f'<br><small>match: <span class="match-reason">{esc(matched)}</span></small>'
        f"<br><small>visit {esc(decision['visit_id'])}</small></dd>"
    )


def panel_html(snapshot: dict[str, Any]) -> str:
    """The live part of a lane card (refreshed by app.js from ``/lanes/{id}/panel``)."""
    read = snapshot["last_read"]
    plates = ", ".join(f"{esc(p['text'])} ({p['confidence']:.2f})" for p in read["plates"])
    barrier = snapshot["barrier"]
    state = "OPEN" if barrier["open"] else "closed"
    pulse = (
        f"last pulse {hhmmss(barrier['last_pulse_at'])} ({barrier['last_pulse_seconds']:g} s)"
        if barrier["last_pulse_at"]
        else "no pulse yet"
    )
    camera = snapshot["camera"]
    if camera is None:
        cam = "no camera configured"
    else:
        age = camera["last_frame_age_s"]
        cam = (
            f"{'connected' if camera['connected'] else 'DISCONNECTED'} · {camera['fps']:g} fps · "
            f"frame {'—' if age is None else f'{age:.1f} s'} old"
        )
    alarms = "".join(
        f"<li{' class=help' if a.startswith('HELP ') else ''}>{esc(a)}</li>"
        for a in snapshot["alarms"]
    )
    alarm_html = f'<ul class="alarms" role="alert">{alarms}</ul>' if alarms else ""
    return f"""{alarm_html}<dl class="facts">
<dt>Last read</dt><dd class="last-read">{plates or "—"} · {ago(read["age_s"])}</dd>
<dt>Decision</dt>{_decision_html(snapshot["last_decision"])}
<dt>Barrier</dt><dd class="barrier {"open" if barrier["open"] else ""}">{state} · {pulse}</dd>
<dt>Camera</dt><dd class="camera">{cam}</dd>
</dl>"""


def _lane_card(request: Request, lane: Lane) -> str:
    state = web_state(request)
    snapshot = lane_snapshot(state.ctx, lane, state.started_at)
    csrf = form_csrf(current_session(request).csrf)
    lid = esc(lane.lane_id)
    return f"""<section class="card lane" id="lane-{lid}">
<h2>{lid} <small>{esc(lane.direction.value)}</small></h2>
<img class="frame" data-live alt="latest frame of {lid}" src="/lanes/{lid}/frame.jpg">
<div class="panel" data-refresh="/lanes/{lid}/panel">{panel_html(snapshot)}</div>
<details><summary>Manual open</summary>
<form method="post" action="/lanes/{lid}/open" class="manual-open">{csrf}
<label>Reason (required) <input name="reason" required maxlength="200"></label>
<button type="submit" class="danger">Open barrier</button></form></details>
<details><summary>Test with a photo</summary>
<form method="post" action="/lanes/{lid}/evaluate" enctype="multipart/form-data"
  class="evaluate">{csrf}
<label>Photo <input type="file" name="image" accept="image/*" required></label>
<label class="check"><input type="checkbox" name="act" value="1"> Act on it (journal and open
  the barrier if allowed; audited)</label>
<label>Reason when acting <input name="reason" maxlength="200"
  placeholder="commissioning photo upload"></label>
<button type="submit">Evaluate</button></form></details>
</section>"""


@router.get("/", response_class=HTMLResponse)
def lanes_page(request: Request, user: Operator) -> Response:
    cards = "".join(_lane_card(request, lane) for lane in get_ctx(request).lanes.values())
    return render(request, "Lanes", f'<div class="lanes">{cards}</div>', active="/")


@router.get("/lanes/{lane_id}/panel", response_class=HTMLResponse)
def lane_panel(request: Request, lane_id: str, user: Operator) -> Response:
    state = web_state(request)
    lane = get_lane(request, lane_id)
    return HTMLResponse(panel_html(lane_snapshot(state.ctx, lane, state.started_at)))


@router.get("/lanes/{lane_id}/frame.jpg")
def lane_frame(request: Request, lane_id: str, user: Operator) -> Response:
    lane = get_lane(request, lane_id)
    frame = lane.source.latest() if lane.source is not None else None
    headers = {"Cache-Control": "no-store"}
    if frame is None:
        return Response(NO_FRAME_SVG, media_type="image/svg+xml", headers=headers)
    return Response(encode_jpeg(frame.image), media_type="image/jpeg", headers=headers)


def _outcome_html(outcome: LaneOutcome, acted: bool) -> str:
    d = outcome.decision
    verdict = "would OPEN" if d.open else "would stay SHUT"
    if acted:
        verdict = "OPENED" if d.open and outcome.barrier_error is None else "DENIED"
        if d.open and outcome.barrier_error:
            verdict = f"decided to open, but the barrier failed: {outcome.barrier_error}"
    booking = f"<dt>Booking</dt><dd>{esc(d.reservation_id)}</dd>" if d.reservation_id else ""
    return f"""<div class="card result {"open" if d.open else "denied"}" role="status">
<p class="verdict"><strong>{esc(verdict)}</strong></p><dl class="facts">
<dt>Reason</dt><dd><code class="reason">{esc(d.reason.value)}</code> {esc(d.detail)}</dd>
<dt>Plate</dt><dd class="plate">{esc(d.plate or "—")} (read {esc(d.read_text or "—")},
 confidence {d.confidence:.2f}{", fuzzy" if d.fuzzy else ""})</dd>{booking}
<dt>Match</dt><dd class="match-reason">{esc(d.match_reason or "—")}</dd>
<dt>Visit</dt><dd>{esc(outcome.visit_id)}</dd>
<dt>Journaled</dt><dd>{"yes, event " + esc(outcome.event_id) if acted else "no (preview)"}</dd>
</dl></div><p><a href="/">Back to lanes</a> · <a href="/events">Events</a></p>"""


@router.post("/lanes/{lane_id}/open", dependencies=ACTING)
def manual_open(
    request: Request,
    user: Operator,
    lane_id: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    lane = get_lane(request, lane_id)
    reason = reason.strip()
    if not reason:
        raise HTTPException(400, "a reason is required for a manual open")
    if len(reason) > 500:
        raise HTTPException(400, "the reason is too long (500 characters at most)")
    frame = lane.source.latest() if lane.source is not None else None
    outcome = lane.manual_open(actor=user, reason=reason)
    if frame is not None:
        save_evidence(get_ctx(request), outcome.event_id, frame.image)
    log.info("manual open of lane %s by %s", lane_id, user)
    if outcome.barrier_error:
        raise HTTPException(502, f"journaled, but the barrier failed: {outcome.barrier_error}")
    body = f"""<div class="card result open" role="status"><p class="verdict"><strong>Barrier
opened</strong> on lane {esc(lane_id)} by {esc(user)}.</p><p>Reason: {esc(reason)}</p>
<p>Visit {esc(outcome.visit_id)} · event {esc(outcome.event_id)}</p></div>
<p><a href="/">Back to lanes</a> · <a href="/audit">Audit log</a></p>"""
    return render(request, "Manual open", body)


@router.post("/lanes/{lane_id}/evaluate", dependencies=ACTING)
def evaluate(
    request: Request,
    user: Operator,
    lane_id: str,
    image: Annotated[UploadFile, File()],
    act: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    ctx = get_ctx(request)
    lane = get_lane(request, lane_id)
    photo = read_upload(image, ctx.web)
    acted = act.lower() in ("1", "on", "true", "yes")
    if acted:
        why = upload_reason(reason)
        outcome = act_on_photo(ctx.store, lane, photo, actor=user, reason=why, via="page")
    else:
        outcome = lane.evaluate_image(photo, act=False)
    log.info("commissioning upload on lane %s by %s (act=%s)", lane_id, user, acted)
    return render(request, f"Test photo on {lane_id}", _outcome_html(outcome, acted))
