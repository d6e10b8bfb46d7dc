"""``create_web_app``: the operator status pages and JSON API as one FastAPI app.

The app runs in the agent's process (see :mod:`gate_agent.web.server`) and reads the agent's
store and lanes directly. Errors are answered as 4xx with a reason: JSON under ``/api``, an HTML
page elsewhere. The access log is ours (:func:`_access_log`): method, path without the query
string (plates travel in query strings and forms), status and time; uvicorn's is switched off.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from gate_agent.config import WebConfig
from gate_agent.metrics import CONTENT_TYPE, AgentMetrics
from gate_agent.web import (
    api,
    pages_code,
    pages_display,
    pages_events,
    pages_lanes,
    pages_login,
    pages_lookup,
    pages_policy,
    pages_stays,
)
from gate_agent.web.auth import LoginRequired, OperatorBook, bearer_refusal
from gate_agent.web.context import AgentParts, SyncStatus, SyncStatusSource, WebContext
from gate_agent.web.deps import WebState, render, web_state
from gate_agent.web.headers import security_headers, with_security_headers
from gate_agent.web.limits import RequestGate
from gate_agent.web.render import esc
from gate_agent.web.sessions import COOKIE, OperatorSessions, SessionSigner
from gate_agent.web.throttle import CodeThrottle, LoginThrottle

__all__ = ["create_web_app"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("gate_agent.web.access")

STATIC_DIR = Path(__file__).parent / "static"


def create_web_app(
    agent: AgentParts | WebContext,
    web_config: WebConfig | None = None,
    *,
    sync: SyncStatus | SyncStatusSource | None = None,
    throttle: LoginThrottle | None = None,
    code_throttle: CodeThrottle | None = None,
) -> FastAPI:
    """The web app over an agent (or a prepared :class:`WebContext`)."""
    if isinstance(agent, WebContext):
        ctx = agent
    else:
        ctx = WebContext.from_agent(agent, web_config or agent.config.web, sync)
    app = FastAPI(title=f"ParkGate agent {ctx.lot_id}", docs_url=None, redoc_url=None)
    app.state.web = WebState(
        ctx,
        OperatorSessions(ctx.store, SessionSigner(ctx.web.session_secret)),
        OperatorBook(ctx.web),
        throttle or LoginThrottle(),
        ctx.monotonic(),
        code_throttle,
    )
    app.add_middleware(RequestGate, web=ctx.web, refuse=_http_error)  # inside _sessions
    app.middleware("http")(_sessions)
    app.middleware("http")(_access_log)
    # outermost: refusals (413, 429) carry the headers too
    app.middleware("http")(with_security_headers(security_headers(https=ctx.web.tls)))
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (
        pages_login,
        pages_lanes,
        pages_events,
        pages_lookup,
        pages_policy,
        pages_stays,
        api,
    ):
        app.include_router(module.router)
    app.include_router(pages_display.router)  # the drivers' lane display: no login
    app.include_router(pages_code.router)  # the drivers' code-entry page: no login
    metrics = getattr(agent, "metrics", None)  # the Agent's AgentMetrics (gate_agent.metrics)
    if metrics is not None:
        _mount_metrics(app, metrics, ctx.web.metrics_token)
    return app


def _mount_metrics(app: FastAPI, metrics: AgentMetrics, token: str | None) -> None:
    """``GET /metrics``: Prometheus text (no plates in it). With ``web.metrics_token`` it needs
    that bearer token; without one only loopback clients (a Prometheus on the Pi) may scrape."""

    async def scrape(request: Request) -> Response:
        if token is not None:
            refusal = bearer_refusal(request.headers.get("authorization", ""), token)
            if refusal is not None:
                raise refusal
        elif not _loopback_client(request):
            raise HTTPException(403, "/metrics answers this machine only (set web.metrics_token)")
        body = await run_in_threadpool(metrics.render)  # reads the store
        return Response(body, media_type=CONTENT_TYPE)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)


def _loopback_client(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Next = Callable[[Request], Awaitable[Response]]


async def _sessions(request: Request, call_next: Next) -> Response:
    state = web_state(request)
    signer = state.sessions.signer
    session = state.sessions.resolve(signer.loads(request.cookies.get(COOKIE)))
    request.state.session = session
    response = await call_next(request)
    if session.dirty:
        response.set_cookie(
            COOKIE,
            signer.dumps(session),
            max_age=int(max(0, session.expires - signer.clock())),
            httponly=True,
            samesite="strict",
            secure=state.ctx.web.tls or request.url.scheme == "https",
        )
    return response


async def _access_log(request: Request, call_next: Next) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    client = request.client.host if request.client else "-"
    access_log.info(
        '%s "%s %s" %d %.1fms',
        client,
        request.method,
        request.url.path,  # never the query string: it may hold a plate
        response.status_code,
        (time.perf_counter() - started) * 1000,
    )
    return response


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get(
        "accept", ""
    )


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.method in ("GET", "HEAD") and not _wants_json(request):
        return RedirectResponse("/login", status_code=303)
    if _wants_json(request):
        return JSONResponse({"detail": "log in first"}, status_code=401)
    body = '<p class="error">Log in first.</p><p><a href="/login">Log in</a></p>'
    return render(request, "Login required", body, status_code=401)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if _wants_json(request):
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )
    body = f'<p class="error" role="alert">{esc(exc.detail)}</p><p><a href="/">Back</a></p>'
    response = render(request, f"Error {exc.status_code}", body, status_code=exc.status_code)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    problems = [
        f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}"
        for err in exc.errors()
    ]
    if _wants_json(request):
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)
    items = "".join(f"<li>{esc(p)}</li>" for p in problems)
    body = f'<p class="error" role="alert">The request was not valid:</p><ul>{items}</ul>'
    return render(request, "Invalid request", body, status_code=422)
