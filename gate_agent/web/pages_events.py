"""The events page: newest first, search by plate and time, lane/decision filters, live rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from gate_agent.domain import EventKind, JournalEvent
from gate_agent.web.context import WebContext
from gate_agent.web.deps import Operator, get_ctx, render
from gate_agent.web.evidence import evidence_file
from gate_agent.web.render import esc, when

__all__ = ["router"]

router = APIRouter()

DECISIONS: dict[str, tuple[str, frozenset[EventKind]]] = {
    "open": ("opened", frozenset({EventKind.ENTRY, EventKind.EXIT, EventKind.MANUAL_OPEN})),
    "denied": ("denied", frozenset({EventKind.DENIED})),
    "manual_open": ("manual opens", frozenset({EventKind.MANUAL_OPEN})),
    "fault": ("barrier faults", frozenset({EventKind.BARRIER_FAULT})),
}
SCAN_LIMIT = 2000


@dataclass(frozen=True)
class EventQuery:
    plate: str = ""
    lane: str = ""
    decision: str = ""
    since: str = ""
    until: str = ""
    limit: int = 100

    def query_string(self) -> str:
        fields = {k: v for k, v in vars(self).items() if v not in ("", None)}
        return urlencode(fields)


def _parse_time(text: str, field: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(422, f"{field}: not a date and time (YYYY-MM-DDTHH:MM)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value  # the form says UTC


def event_query(
    plate: Annotated[str, Query(max_length=20)] = "",
    lane: Annotated[str, Query(max_length=64)] = "",
    decision: Annotated[str, Query()] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventQuery:
    if decision and decision not in DECISIONS:
        raise HTTPException(422, f"decision: one of {', '.join(DECISIONS)} or empty")
    return EventQuery(plate.strip(), lane.strip(), decision, since, until, limit)


def find_events(ctx: WebContext, q: EventQuery) -> list[JournalEvent]:
    kinds = DECISIONS[q.decision][1] if q.decision else None
    single = next(iter(kinds)) if kinds and len(kinds) == 1 else None
    events = ctx.store.events(
        q.limit if kinds is None or single else SCAN_LIMIT,
        plate=q.plate or None,
        lane_id=q.lane or None,
        kind=single,
        since=_parse_time(q.since, "since"),
        until=_parse_time(q.until, "until"),
    )
    if kinds is not None:
        events = [e for e in events if e.kind in kinds]
    return events[: q.limit]


def event_rows(ctx: WebContext, events: list[JournalEvent]) -> str:
    if not events:
        return '<tr><td colspan="7" class="empty">No events match.</td></tr>'
    rows = []
    for e in events:
        opened = e.kind in (EventKind.ENTRY, EventKind.EXIT, EventKind.MANUAL_OPEN)
        thumb = ""
        if evidence_file(ctx, e) is not None:
            src = f"/events/{esc(e.event_id)}/image"
            thumb = f'<a href="{src}"><img class="thumb" src="{src}" alt="evidence"></a>'
        who = e.detail.get("actor") if e.kind is EventKind.MANUAL_OPEN else None
        rows.append(
            f'<tr class="{"open" if opened else "denied"}" data-event="{esc(e.event_id)}">'
            f"<td>{when(e.occurred_at)}</td><td>{esc(e.lane_id)}</td>"
            f'<td>{esc(e.kind.value)}</td><td class="plate">{esc(e.plate or e.read_text)}</td>'
            f"<td><code>{esc(e.reason)}</code>{' by ' + esc(who) if who else ''}</td>"
            f'<td class="visit">{esc(e.visit_id)}</td><td>{thumb}</td></tr>'
        )
    return "".join(rows)


def _filters(ctx: WebContext, q: EventQuery) -> str:
    lanes = "".join(
        f'<option value="{esc(lid)}"{" selected" if lid == q.lane else ""}>{esc(lid)}</option>'
        for lid in ctx.lanes
    )
    decisions = "".join(
        f'<option value="{key}"{" selected" if key == q.decision else ""}>{esc(label)}</option>'
        for key, (label, _) in DECISIONS.items()
    )
    return f"""<form method="get" action="/events" class="filters card">
<label>Plate <input name="plate" value="{esc(q.plate)}" maxlength="20"></label>
<label>From (UTC) <input name="since" type="datetime-local" value="{esc(q.since)}"></label>
<label>To (UTC) <input name="until" type="datetime-local" value="{esc(q.until)}"></label>
<label>Lane <select name="lane"><option value="">all</option>{lanes}</select></label>
<label>Decision <select name="decision"><option value="">all</option>{decisions}</select></label>
<button type="submit">Search</button></form>"""


@router.get("/events", response_class=HTMLResponse)
def events_page(
    request: Request,
    q: Annotated[EventQuery, Depends(event_query)],
    user: Operator,
) -> Response:
    ctx = get_ctx(request)
    rows = event_rows(ctx, find_events(ctx, q))
    body = f"""{_filters(ctx, q)}
<div class="scroll"><table class="events"><thead><tr><th>When</th><th>Lane</th><th>Event</th>
<th>Plate</th><th>Reason</th><th>Visit</th><th>Image</th></tr></thead>
<tbody data-refresh="/events/rows?{esc(q.query_string())}" data-every="2000">{rows}</tbody>
</table></div>"""
    return render(request, "Events", body, active="/events")


@router.get("/events/rows", response_class=HTMLResponse)
def events_rows(
    request: Request,
    q: Annotated[EventQuery, Depends(event_query)],
    user: Operator,
) -> Response:
    ctx = get_ctx(request)
    return HTMLResponse(event_rows(ctx, find_events(ctx, q)))


@router.get("/events/{event_id}/image")
def event_image(request: Request, event_id: str, user: Operator) -> Response:
    ctx = get_ctx(request)
    if not event_id.isalnum():
        raise HTTPException(404, "no such event")
    for event in ctx.store.events(SCAN_LIMIT):
        if event.event_id == event_id:
            path = evidence_file(ctx, event)
            if path is not None:
                return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})
            break
    raise HTTPException(404, "no image kept for this event")
