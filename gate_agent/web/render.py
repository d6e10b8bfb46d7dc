"""Server-rendered HTML: the page frame, escaping and small formatting helpers.

No template engine and no JavaScript build: pages are f-strings over :func:`esc`-escaped values,
styled by ``static/app.css``; ``static/app.js`` only refreshes parts of a page (it works without).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from fastapi.responses import HTMLResponse

__all__ = ["ago", "esc", "form_csrf", "hhmmss", "page", "when"]

NAV = (
    ("/", "Lanes"),
    ("/events", "Events"),
    ("/why", "Why denied?"),
    ("/occupancy", "Occupancy"),
    ("/stays", "Stays"),
    ("/sync", "Sync"),
    ("/policy", "Policy"),
    ("/audit", "Audit"),
)


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def form_csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def when(value: datetime | None) -> str:
    """A UTC timestamp as the operator reads it (local time of the agent is not assumed)."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def hhmmss(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.1f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def page(
    title: str,
    body: str,
    *,
    lot_id: str,
    user: str | None,
    csrf: str,
    status_code: int = 200,
    active: str = "",
) -> HTMLResponse:
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if href == active else ""}>{esc(label)}</a>'
        for href, label in NAV
    )
    account = ""
    if user:
        account = (
            f'<form method="post" action="/logout" class="logout">{form_csrf(csrf)}'
            f'<span class="who">{esc(user)}</span><button type="submit">Log out</button></form>'
        )
    nav = f"<nav>{links}</nav>{account}" if user else ""
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · ParkGate {esc(lot_id)}</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head><body>
<header><strong class="brand">ParkGate · {esc(lot_id)}</strong>{nav}</header>
<main><h1>{esc(title)}</h1>
{body}
</main></body></html>"""
    return HTMLResponse(document, status_code=status_code)
