"""The request gate in front of the routes: who may send a body, how big, from which site.

:class:`RequestGate` is plain ASGI middleware that runs after the session is resolved and before
any route reads a byte of the body:

1. State-changing requests (every method but GET/HEAD/OPTIONS) other than ``POST /login`` and a
   lane's code page (``POST /lanes/{lane_id}/code``, for drivers) must be authenticated first:
   the bearer token under ``/api/``, a logged-in session elsewhere. Anyone else gets 401/403 and
   the connection is closed with the body unread.
2. A browser's cross-site state-changing request is refused (403) from its ``Sec-Fetch-Site`` or
   ``Origin`` header, on top of the CSRF token the forms carry.
3. Each route has a body limit (:func:`body_limit`): photo uploads ``web.max_upload_bytes``, the
   login form 8 KiB, a lane's code page 2 KiB, every other request 64 KiB. A ``Content-Length``
   over it is answered 413 before reading; a chunked body is read into memory only up to the
   limit (413 past it) and handed to the route whole, so no body over the limit ever reaches the
   multipart parser, which spools file parts over 1 MB to temporary files.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gate_agent.config import WebConfig
from gate_agent.web.auth import bearer_refusal
from gate_agent.web.sessions import Session

__all__ = ["CODE_LIMIT", "FORM_LIMIT", "LOGIN_LIMIT", "RequestGate", "body_limit"]

FORM_LIMIT = 64 * 1024
LOGIN_LIMIT = 8 * 1024
CODE_LIMIT = 2 * 1024
CODE_ROUTE = re.compile(r"/lanes/[^/]+/code")  # drivers: no login, CSRF token and throttle
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UPLOAD_ROUTES = (
    re.compile(r"/api/lanes/[^/]+/frames"),
    re.compile(r"/lanes/[^/]+/evaluate"),
)

Refuse = Callable[[Request, HTTPException], Awaitable[Response]]


def body_limit(method: str, path: str, web: WebConfig) -> int:
    """The largest body accepted on ``method path``."""
    if method == "POST" and any(route.fullmatch(path) for route in UPLOAD_ROUTES):
        return web.max_upload_bytes
    if path == "/login":
        return LOGIN_LIMIT
    if CODE_ROUTE.fullmatch(path):
        return CODE_LIMIT
    return FORM_LIMIT


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def authentication_refusal(scope: Scope, web: WebConfig) -> HTTPException | None:
    """Why a state-changing request may not send a body here, or None when it may."""
    path = scope["path"]
    if scope["method"] in SAFE_METHODS or path == "/login" or CODE_ROUTE.fullmatch(path):
        return None
    if path.startswith("/api/"):
        return bearer_refusal(_header(scope, b"authorization") or "", web.api_token)
    session: Session | None = scope.get("state", {}).get("session")
    if session is None or not session.user:
        return HTTPException(401, "log in first")
    return None


def cross_site_refusal(scope: Scope) -> HTTPException | None:
    """A browser's state-changing request from another site (the CSRF token's second line)."""
    if scope["method"] in SAFE_METHODS:
        return None
    if _header(scope, b"sec-fetch-site") == "cross-site":
        return HTTPException(403, "cross-site request refused")
    origin = _header(scope, b"origin")
    if origin is None:
        return None
    host = _header(scope, b"host")
    if origin == "null" or host is None or urlsplit(origin).netloc != host:
        return HTTPException(403, "cross-site request refused: Origin is not this agent")
    return None


def _declared_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return -1


class RequestGate:
    """Authentication, cross-site and body-size checks before a route reads the body."""

    def __init__(self, app: ASGIApp, *, web: WebConfig, refuse: Refuse) -> None:
        self.app = app
        self.web = web
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = authentication_refusal(scope, self.web) or cross_site_refusal(scope)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal)
            return
        limit = body_limit(scope["method"], scope["path"], self.web)
        declared = _declared_length(scope)
        if declared is not None and declared < 0:
            await self._refuse(scope, receive, send, HTTPException(400, "bad Content-Length"))
        elif declared is not None and declared > limit:
            await self._refuse(scope, receive, send, _too_large(limit))
        elif declared is not None:  # the server stops at Content-Length: at most the limit
            await self.app(scope, receive, send)
        else:
            await self._buffered(scope, receive, send, limit)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """A body of unknown length (chunked): read it into memory up to ``limit``, then pass."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, _too_large(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, refusal: HTTPException
    ) -> None:
        response = await self.refuse(Request(scope, receive), refusal)
        response.headers["connection"] = "close"  # the unread rest of the body is dropped
        await response(scope, receive, send)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than {limit:,} bytes")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect

    return replay
