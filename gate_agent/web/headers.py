"""Security headers on every answer of the agent's web app (pure ASGI, so the display's
server-sent events stream through untouched).

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

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders", "security_headers"]

HSTS_SECONDS = 365 * 24 * 3600


def security_headers(*, https: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", b"frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    ]
    if https:
        headers.append((b"strict-transport-security", f"max-age={HSTS_SECONDS}".encode()))
    return headers


class SecurityHeaders:
    """Adds ``headers`` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, *, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = list(message.get("headers", []))
                names = {name.lower() for name, _ in present}
                present.extend((k, v) for k, v in self.headers if k not in names)
                message["headers"] = present
            await send(message)

        await self.app(scope, receive, send_with_headers)
