"""The drivers' lane display: ``GET /display/{lane_id}`` and its live stream, no login.

The page shows the lane's current screen only (never a history) and ``static/display.js`` keeps
it current from ``GET /display/{lane_id}/events``, a server-sent event stream that sends a
``screen`` event whenever the screen changes and a comment every ``KEEPALIVE_S`` so a dead
connection is noticed. The browser's ``EventSource`` reconnects by itself (``retry``); each lane
allows ``display.max_screens_per_lane`` streams at once, more get 429.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import lru_cache

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.background import BackgroundTask

from gate_agent.display import (
    DisplayHub,
    LaneBoard,
    Screen,
    ScreenState,
    TooManyWatchers,
    Watcher,
)
from gate_agent.web.deps import get_ctx
from gate_agent.web.render import esc

__all__ = ["router"]

router = APIRouter()

KEEPALIVE_S = 15.0
RETRY_MS = 2000  # how soon a browser reconnects after losing the stream


def _board(request: Request, lane_id: str) -> tuple[DisplayHub, LaneBoard]:
    hub = get_ctx(request).display
    if hub is None:
        raise HTTPException(404, "the lane display is not enabled on this agent")
    board = hub.boards.get(lane_id)
    if board is None:
        raise HTTPException(404, f"no lane {lane_id!r} in this lot")
    return hub, board


@lru_cache(maxsize=16)
def qr_svg(url: str) -> str:
    """The pay link as an inline SVG QR code (dark modules on the page's white box)."""
    code = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(url)
    image = code.make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return str(image.to_string(encoding="unicode"))


def code_page_url(request: Request, lane_id: str) -> str:
    """The lane's code-entry page as the driver's phone reaches it: the agent's address as the
    panel's browser used it (the lot's network)."""
    return f"{str(request.base_url).rstrip('/')}/lanes/{lane_id}/code"


def _qr_url(screen: Screen, code_url: str | None) -> str | None:
    """The pay link when money is owed; on a denial, the lane's code-entry page."""
    if screen.pay_url:
        return screen.pay_url
    return code_url if screen.state is ScreenState.DENIED else None


def screen_json(screen: Screen, code_url: str | None = None) -> str:
    data = screen.to_dict()
    url = _qr_url(screen, code_url)
    data["qr_svg"] = qr_svg(url) if url else ""
    data["qr_url"] = url or ""
    return json.dumps(data, ensure_ascii=False)


def _screen_html(screen: Screen, code_url: str | None = None) -> str:
    url = _qr_url(screen, code_url)
    qr = qr_svg(url) if url else ""
    hidden = "" if screen.offline else " hidden"
    return f"""<p class="offline"{hidden}>{esc(screen.offline)}</p>
<h1 class="headline">{esc(screen.headline)}</h1>
<p class="detail">{esc(screen.detail)}</p>
<div class="qr"{"" if qr else " hidden"} data-url="{esc(url or "")}">{qr}</div>
<p class="hint">{esc(screen.hint)}</p>"""


@router.get("/display/{lane_id}", response_class=HTMLResponse)
def display_page(request: Request, lane_id: str) -> HTMLResponse:
    _, board = _board(request, lane_id)
    screen, _ = board.current()
    events = f"/display/{lane_id}/events"
    return HTMLResponse(
        f"""<!doctype html>
<html lang="{esc(screen.language)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ParkGate · {esc(lane_id)}</title>
<link rel="stylesheet" href="/static/display.css">
<script src="/static/display.js" defer></script>
</head><body>
<main id="display" class="display state-{esc(screen.state)}" data-events="{esc(events)}"
 data-connected="0" aria-live="polite">
{_screen_html(screen, code_page_url(request, lane_id))}
</main></body></html>""",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/display/{lane_id}/events")
async def display_events(request: Request, lane_id: str) -> StreamingResponse:
    _, board = _board(request, lane_id)
    try:
        watcher = board.watch(asyncio.get_running_loop())
    except TooManyWatchers as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "10"}) from None
    return StreamingResponse(
        _stream(board, watcher, code_page_url(request, lane_id)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        background=BackgroundTask(watcher.close),  # also when the stream never started
    )


async def _stream(board: LaneBoard, watcher: Watcher, code_url: str) -> AsyncIterator[str]:
    """``screen`` events while the connection lasts; the watcher is released however it ends."""
    try:
        yield f"retry: {RETRY_MS}\n\n"
        seen = -1
        while not board.closed:
            screen, version = board.current()
            if version != seen:
                seen = version
                yield f"event: screen\ndata: {screen_json(screen, code_url)}\n\n"
            if not await watcher.changed(KEEPALIVE_S):
                yield ": keepalive\n\n"
    finally:
        watcher.close()
