"""Log in and out (see :mod:`gate_agent.web.auth` for the design)."""

from __future__ import annotations

import logging
import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gate_agent.web.auth import check_csrf, client_ip, current_session
from gate_agent.web.deps import render, web_state
from gate_agent.web.render import esc, form_csrf

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()


def _login_form(request: Request, message: str = "", username: str = "") -> str:
    error = f'<p class="error" role="alert">{esc(message)}</p>' if message else ""
    return f"""{error}
<form method="post" action="/login" class="card narrow">
  {form_csrf(current_session(request).csrf)}
  <label>Operator <input name="username" autocomplete="username" required
    value="{esc(username)}"></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"
    required></label>
  <button type="submit">Log in</button>
</form>"""


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    if current_session(request).user:
        return RedirectResponse("/", status_code=303)
    return render(request, "Operator login", _login_form(request))


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = ""
) -> Response:
    state = web_state(request)
    store = state.ctx.store
    ip = client_ip(request)
    username = username.strip()
    wait = state.throttle.attempt(store, username, ip)  # counted before the password is checked
    if wait is not None:
        log.warning("login throttled for %s", ip)
        raise HTTPException(
            429,
            "too many failed logins; try again later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    if not username or not state.operators.check(username, password):
        log.warning("failed login from %s", ip)
        body = _login_form(request, "Unknown operator or wrong password.", username)
        return render(request, "Operator login", body, status_code=401)
    state.throttle.succeeded(store, username, ip)
    state.sessions.start(current_session(request), username)
    log.info("operator %s logged in from %s", username, ip)
    return RedirectResponse("/", status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    session = current_session(request)
    if session.user:
        log.info("operator %s logged out", session.user)
    web_state(request).sessions.end(session)
    return RedirectResponse("/login", status_code=303)
