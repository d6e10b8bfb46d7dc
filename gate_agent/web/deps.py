"""Request-scoped helpers the route modules share: the context and a page renderer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from gate_agent.lane import Lane
from gate_agent.web.auth import OperatorBook, current_session, require_operator
from gate_agent.web.context import WebContext
from gate_agent.web.render import page
from gate_agent.web.sessions import OperatorSessions
from gate_agent.web.throttle import CodeThrottle, LoginThrottle

__all__ = ["Operator", "WebState", "get_ctx", "get_lane", "render", "web_state"]

Operator = Annotated[str, Depends(require_operator)]


class WebState:
    """Per-app state kept on ``app.state.web``."""

    def __init__(
        self,
        ctx: WebContext,
        sessions: OperatorSessions,
        operators: OperatorBook,
        throttle: LoginThrottle,
        started_at: float,
        code_throttle: CodeThrottle | None = None,
    ) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self.operators = operators
        self.throttle = throttle
        self.started_at = started_at
        self.code_throttle = code_throttle or CodeThrottle()  # the lanes' code pages


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def get_ctx(request: Request) -> WebContext:
    return web_state(request).ctx


def get_lane(request: Request, lane_id: str) -> Lane:
    from fastapi import HTTPException

    lane = get_ctx(request).lanes.get(lane_id)
    if lane is None:
        raise HTTPException(404, f"no lane {lane_id!r} in this lot")
    return lane


def render(
    request: Request, title: str, body: str, *, status_code: int = 200, active: str = ""
) -> HTMLResponse:
    session = current_session(request)
    return page(
        title,
        body,
        lot_id=get_ctx(request).lot_id,
        user=session.user,
        csrf=session.csrf,
        status_code=status_code,
        active=active,
    )
