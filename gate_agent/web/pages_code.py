"""The lane's code-entry page for a driver's phone: ``/lanes/{lane_id}/code`` (no login).

A driver whose plate the camera could not read (or whose booking it could not find) scans the QR
code on the lane display, which opens this page on the agent over the lot's network, so it works
while the lot cannot reach the cloud. The driver types the booking id or the access code, and the
plate's last three characters; when they match a booking in the lot's cache, the lane decides
for that booking by :meth:`~gate_agent.lane.Lane.open_by_code` /
:meth:`~gate_agent.lane.Lane.open_by_booking` — the path a QR read at the camera takes:
journaled with reason ``booking_code`` (or why not), then the barrier pulsed.

What a guess can learn: nothing about other drivers. The page never shows a plate or a booking;
an unknown booking, a wrong plate ending, a garbled or forged code all answer the same "no
booking matches". Only a driver who typed both a booking (or code) and its plate's ending hears
why it does not open (not paid, too early, used already, ...). The form carries the visitor's
CSRF token; the body is limited (:data:`gate_agent.web.limits.CODE_LIMIT`); attempts are limited
per lane and per address (:class:`~gate_agent.web.throttle.CodeThrottle`), counted before
anything is looked up.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from gate_agent.domain import Reason
from gate_agent.lane import Lane, LaneOutcome
from gate_agent.web.auth import check_csrf, client_ip, current_session
from gate_agent.web.deps import get_ctx, web_state
from gate_agent.web.render import esc, form_csrf

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()

BOOKING_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NO_MATCH = "No booking matches that booking and plate ending. Check them, or press Help."
OUTCOME_TEXT: dict[Reason, str] = {
    Reason.NOT_PAID: "Your booking is not paid yet.",
    Reason.TOO_EARLY: "Your booking has not started yet.",
    Reason.CODE_EXPIRED: "Your booking has ended.",
    Reason.CODE_CANCELLED: "This booking was cancelled.",
    Reason.CODE_USED: "This booking was already used to enter. Press Help if that is wrong.",
    Reason.PAYMENT_DUE: "Money is owed for this stay: please pay, then try again.",
    Reason.CODE_INVALID: NO_MATCH,
    Reason.CODE_OTHER_LOT: NO_MATCH,
    Reason.NO_RESERVATION: NO_MATCH,
}


def _lane(request: Request, lane_id: str) -> Lane:
    lane = get_ctx(request).lanes.get(lane_id)
    if lane is None:
        raise HTTPException(404, "no such lane")
    return lane


def _page(
    request: Request, lane_id: str, message: str = "", *, status_code: int = 200
) -> HTMLResponse:
    csrf = current_session(request).csrf
    notice = f'<p class="notice" role="status">{esc(message)}</p>' if message else ""
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ParkGate · enter your booking</title>
<link rel="stylesheet" href="/static/app.css">
</head><body><main>
<h1>Open the barrier with your booking</h1>
{notice}
<form method="post" action="/lanes/{esc(lane_id)}/code" autocomplete="off">
{form_csrf(csrf)}
<label>Booking number or access code
<input name="booking" required maxlength="200" autocapitalize="off" spellcheck="false"></label>
<label>Last 3 characters of your number plate
<input name="plate_end" required maxlength="16" autocapitalize="characters"></label>
<button type="submit">Open</button>
</form>
</main></body></html>""",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/lanes/{lane_id}/code", response_class=HTMLResponse)
def code_form(request: Request, lane_id: str) -> HTMLResponse:
    _lane(request, lane_id)
    return _page(request, lane_id)


@router.post(
    "/lanes/{lane_id}/code", response_class=HTMLResponse, dependencies=[Depends(check_csrf)]
)
async def code_entered(
    request: Request,
    lane_id: str,
    booking: Annotated[str, Form(max_length=200)],
    plate_end: Annotated[str, Form(max_length=16)],
) -> HTMLResponse:
    lane = _lane(request, lane_id)
    wait = web_state(request).code_throttle.attempt(lane_id, client_ip(request))
    if wait is not None:
        raise HTTPException(
            429, "too many tries: wait a minute", headers={"Retry-After": str(int(wait) + 1)}
        )
    outcome = await run_in_threadpool(_decide, lane, booking.strip(), plate_end)
    if outcome is None:
        return _page(request, lane_id, NO_MATCH)
    decision = outcome.decision
    if decision.open:
        return _page(request, lane_id, "The barrier is opening. Drive on.")
    return _page(request, lane_id, OUTCOME_TEXT.get(decision.reason, NO_MATCH))


def _decide(lane: Lane, booking: str, plate_end: str) -> LaneOutcome | None:
    if booking.startswith("v1."):
        return lane.open_by_code(booking, plate_suffix=plate_end)
    if not BOOKING_ID.match(booking):
        return None
    return lane.open_by_booking(booking, plate_end)
