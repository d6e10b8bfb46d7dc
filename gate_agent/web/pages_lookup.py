"""The why-was-this-plate-denied lookup, occupancy and anti-passback reset, sync health, audit."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gate_agent import plates
from gate_agent.decision import decide
from gate_agent.domain import (
    AuditEntry,
    Direction,
    EventKind,
    MatchKind,
    Reason,
    Reservation,
)
from gate_agent.lane import Lane
from gate_agent.web.auth import check_csrf, current_session, require_operator
from gate_agent.web.context import WebContext, sync_snapshot
from gate_agent.web.deps import Operator, get_ctx, render
from gate_agent.web.evidence import evidence_file
from gate_agent.web.render import ago, esc, form_csrf, when

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()
ACTING = [Depends(require_operator), Depends(check_csrf)]

SYNC_EXTRAS = (
    ("inflight", "Unacknowledged publishes"),
    ("dead_letters", "Dead letters"),
    ("last_error", "Last error"),
    ("clock_offset_s", "Clock offset (lot minus cloud, s)"),
)
RULE_TEXT: dict[Reason, str] = {
    Reason.RESERVATION_VALID: "a confirmed reservation covers now (with the grace): it opens",
    Reason.ALLOWLISTED: "an allow-list entry is valid now: it opens",
    Reason.EXIT_PAID: "nothing is owed for the visit: the exit opens",
    Reason.BILL_LATER: "money is owed but the lot bills later (pay before exit off, or offline "
    "with open_and_bill_later): it opens",
    Reason.DRIVE_UP: "no booking, but the lot admits drive-ups and a drive-up space is free",
    Reason.LOT_FULL: "no booking, and every drive-up space is taken",
    Reason.PAID: "the stay is paid through now (plus the time to leave): the exit opens",
    Reason.SOFT_PASSBACK: "recorded inside already; soft anti-passback opens and flags it",
    Reason.NO_RESERVATION: "no cached reservation or allow-list entry for this plate",
    Reason.NOT_PAID: "the reservation is still pending payment",
    Reason.TOO_EARLY: "the reservation starts later than the early grace allows",
    Reason.EXPIRED: "the reservation (with the late grace) has ended",
    Reason.CANCELLED: "the reservation was cancelled",
    Reason.ALREADY_INSIDE: "hard anti-passback: the plate is recorded inside already",
    Reason.PAYMENT_DUE: "the visit owes money (overstay priced with the lot's tariff, or what the"
    " cloud says is owed) that has not been paid",
    Reason.LOW_CONFIDENCE: "the read (or fuzzy match) was not sure enough to act on",
    Reason.AMBIGUOUS_MATCH: "several cached plates are equally near the read",
    Reason.DENYLISTED: "a deny-list entry is valid now",
    Reason.NO_PLATE: "no plate was read",
    Reason.MANUAL_OPEN: "an operator opened by hand",
    Reason.BOOKING_CODE: "a valid booking access code (QR or code page) for a booking valid now",
    Reason.CODE_INVALID: "the access code is garbled, forged or signed with a key not held",
    Reason.CODE_OTHER_LOT: "the access code is for another lot",
    Reason.CODE_EXPIRED: "the access code or its booking has ended",
    Reason.CODE_CANCELLED: "the access code's booking was cancelled",
    Reason.CODE_USED: "the access code's car is recorded inside: one entry until an exit",
}


def _lane_for(ctx: WebContext, direction: Direction) -> Lane | None:
    lanes = list(ctx.lanes.values())
    for lane in lanes:
        if lane.direction is direction:
            return lane
    return lanes[0] if lanes else None


def _reservation_rows(reservations: list[Reservation]) -> str:
    if not reservations:
        return "<p>No cached reservation near this plate.</p>"
    rows = "".join(
        f"<tr><td>{esc(r.plate)}</td><td>{esc(r.id)}</td><td>{esc(r.status.value)}</td>"
        f"<td>{when(r.starts_at)}</td><td>{when(r.ends_at)}</td>"
        f"<td>{r.amount_owed_cents / 100:.2f} {esc(r.currency)}</td></tr>"
        for r in reservations
    )
    return (
        '<div class="scroll"><table><thead><tr><th>Plate</th><th>Booking</th><th>Status</th>'
        "<th>Starts</th><th>Ends</th><th>Owed</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


def why_html(ctx: WebContext, plate: str) -> str:
    """Judge ``plate`` as a perfect read, with the same lookup and rules as the lanes."""
    facts = ctx.store.facts_for(plate, 1.0)
    match = facts.match
    near = list(facts.reservations)
    if match.kind is MatchKind.AMBIGUOUS:
        for alternative in match.alternatives:
            near.extend(ctx.store.reservations_for_plate(alternative))
    matched = {
        MatchKind.EXACT: f"exact match {esc(match.plate)}",
        MatchKind.FUZZY: f"fuzzy match {esc(match.plate)} ({esc(match.reason)})",
        MatchKind.AMBIGUOUS: "ambiguous: " + esc(", ".join(match.alternatives)),
        MatchKind.NONE: "no cached plate (a sure read matches its own plate only)",
    }[match.kind]
    verdicts = []
    now = ctx.wallclock()
    for direction in sorted({lane.direction for lane in ctx.lanes.values()}):
        lane = _lane_for(ctx, direction)
        if lane is None:
            continue
        rules = lane.current_rules()
        d = decide(direction, [facts], now, rules, lane.lane_id, lane.lot_state(rules))
        verdicts.append(
            f'<li class="{"open" if d.open else "denied"}"><strong>{esc(direction.value)}: '
            f'{"opens" if d.open else "stays shut"}</strong> — <code class="reason">'
            f"{esc(d.reason.value)}</code>: {esc(RULE_TEXT.get(d.reason, ''))}"
            f"{' (' + esc(d.detail) + ')' if d.detail else ''}</li>"
        )
    inside = (
        f"<p>Recorded inside since {when(facts.presence.entered_at)} "
        f"(visit {esc(facts.presence.visit_id)}).</p>"
        if facts.presence
        else ""
    )
    lists = "".join(
        f"<li>{esc(e.kind.value)}-list {esc(e.plate)} {esc(e.category or '')} "
        f"{when(e.valid_from)} – {when(e.valid_until)} "
        f"{'lanes ' + esc(', '.join(e.lanes)) if e.lanes is not None else 'every lane'} "
        f"{esc(e.note)}</li>"
        for e in facts.list_entries
    )
    denials = ctx.store.events(5, plate=plate, kind=EventKind.DENIED)
    past = "".join(
        f"<li>{when(e.occurred_at)} lane {esc(e.lane_id)}: <code>{esc(e.reason)}</code> "
        f"(read {esc(e.read_text)}, confidence {e.confidence or 0:.2f})</li>"
        for e in denials
    )
    return f"""<section class="card why"><h2>{esc(plates.normalise(plate))}</h2>
<p>Cache lookup: {matched}.</p>{inside}
<h3>If read now</h3><ul class="verdicts">{"".join(verdicts)}</ul>
<h3>Nearly matching reservations</h3>{_reservation_rows(near)}
{f"<h3>List entries</h3><ul>{lists}</ul>" if lists else ""}
<h3>Recent denials</h3>{f"<ul>{past}</ul>" if past else "<p>None journaled.</p>"}</section>"""


@router.get("/why", response_class=HTMLResponse)
def why_page(
    request: Request,
    user: Operator,
    plate: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    ctx = get_ctx(request)
    form = f"""<form method="get" action="/why" class="card filters">
<label>Plate <input name="plate" value="{esc(plate)}" maxlength="20" required></label>
<button type="submit">Explain</button></form>"""
    result = why_html(ctx, plate) if plates.normalise(plate) else ""
    return render(request, "Why was this plate denied?", form + result, active="/why")


@router.get("/occupancy", response_class=HTMLResponse)
def occupancy_page(request: Request, user: Operator) -> Response:
    ctx = get_ctx(request)
    now = ctx.wallclock()
    csrf = form_csrf(current_session(request).csrf)
    rows = "".join(
        f'<tr><td class="plate">{esc(p.plate)}</td><td>{when(p.entered_at)}</td>'
        f"<td>{ago((now - p.entered_at).total_seconds()).removesuffix(' ago')}</td>"
        f"<td>{esc(p.reservation_id or '—')}</td><td>"
        f'<form method="post" action="/occupancy/reset" class="inline">{csrf}'
        f'<input type="hidden" name="plate" value="{esc(p.plate)}">'
        f'<input name="reason" placeholder="reason" required maxlength="200">'
        f'<button type="submit">Reset</button></form></td></tr>'
        for p in ctx.store.inside()
    )
    body = f"""<p>{len(ctx.store.inside())} vehicle(s) inside.</p>
<div class="scroll"><table><thead><tr><th>Plate</th><th>Entered</th><th>For</th><th>Booking</th>
<th>Anti-passback reset</th></tr></thead><tbody>{rows}</tbody></table></div>"""
    return render(request, "Occupancy", body, active="/occupancy")


@router.post("/occupancy/reset", dependencies=ACTING)
def reset_presence(
    request: Request,
    user: Operator,
    plate: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    if not plates.normalise(plate):
        raise HTTPException(400, "which plate? the plate is missing")
    if not reason.strip():
        raise HTTPException(400, "a reason is required for an anti-passback reset")
    get_ctx(request).store.reset_presence(plate, actor=user, reason=reason.strip()[:500])
    return RedirectResponse("/occupancy", status_code=303)


@router.get("/sync", response_class=HTMLResponse)
def sync_page(request: Request, user: Operator) -> Response:
    snap = sync_snapshot(get_ctx(request))
    state = (
        "sync disabled"
        if not snap["enabled"]
        else ("broker connected" if snap["connected"] else "broker DISCONNECTED")
    )
    cls = "ok" if snap.get("connected") else ("off" if not snap["enabled"] else "alarm")
    extras = "".join(
        f"<dt>{esc(label)}</dt><dd>{esc(snap[key] if snap[key] is not None else '—')}</dd>"
        for key, label in SYNC_EXTRAS
        if key in snap
    )
    body = f"""<section class="card sync"><p class="sync-state {cls}">{state}</p><dl class="facts">
<dt>Last applied sequence</dt><dd>{esc(snap.get("last_applied_seq") or "—")}</dd>
<dt>Outbox depth</dt><dd class="outbox">{esc(snap["outbox_depth"])}</dd>
<dt>Last catch-up</dt><dd>{esc(snap.get("last_catch_up_at") or "—")}</dd>
<dt>Last heartbeat</dt><dd>{esc(snap.get("last_heartbeat_at") or "—")}</dd>{extras}
</dl></section>"""
    return render(request, "Sync health", body, active="/sync")


def _frame_link(ctx: WebContext, entry: AuditEntry) -> str:
    """The frame saved with a manual open (the journal event with the same who/why/lane)."""
    if entry.action != "manual_open":
        return ""
    for event in ctx.store.events(50, lane_id=entry.lane_id, kind=EventKind.MANUAL_OPEN):
        same = event.detail.get("actor") == entry.actor and event.detail.get("reason") == (
            entry.reason
        )
        close = event.occurred_at and abs((event.occurred_at - entry.at).total_seconds()) < 10
        if same and close:
            if evidence_file(ctx, event) is None:
                return "no frame"
            return f'<a href="/events/{esc(event.event_id)}/image">frame</a>'
    return ""


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, user: Operator) -> Response:
    ctx = get_ctx(request)
    rows = "".join(
        f'<tr class="audit-{esc(a.action)}"><td>{when(a.at)}</td><td class="actor">'
        f"{esc(a.actor)}</td><td>{esc(a.action)}</td><td>{esc(a.lane_id or '—')}</td>"
        f'<td class="why">{esc(a.reason)}</td><td>{_frame_link(ctx, a)}</td></tr>'
        for a in ctx.store.audit_log(100)
    )
    body = f"""<div class="scroll"><table class="audit"><thead><tr><th>When</th><th>Who</th>
<th>Action</th><th>Lane</th><th>Why</th><th>Frame</th></tr></thead><tbody>{rows}</tbody>
</table></div>"""
    return render(request, "Audit log", body, active="/audit")
