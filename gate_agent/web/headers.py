"""Security headers on every answer of the agent's web app (an HTTP middleware, outermost, so
refusals carry them too).

- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no other site can frame the
  status page and trick an operator into pressing *Open barrier* (clickjacking gets past CSRF
  tokens, because the click is the operator's own).
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``, CSP ``base-uri 'none';
  object-src 'none'``.
- ``Cache-Control: no-store`` unless the route set its own: pages with plates stay out of a shared
  booth PC's browser cache (the few small static files are fetched again too).
- ``Strict-Transport-Security`` when the app is served over HTTPS (``web.tls_cert_file``).

A header the route already set is left as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["security_headers", "with_security_headers"]

HSTS_SECONDS = 365 * 24 * 3600
Next = Callable[[Request], Awaitable[Response]]
Middleware = Callable[[Request, Next], Awaitable[Response]]


def security_headers(*, https: bool) -> dict[str, str]:
    headers = {
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    if https:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}"
    return headers


def with_security_headers(
    headers: dict[str, str],
) -> Callable[[Request, Next], Awaitable[Response]]:
    """An HTTP middleware adding ``headers`` where the route did not set its own."""

    async def add_headers(request: Request, call_next: Next) -> Response:
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    return add_headers
