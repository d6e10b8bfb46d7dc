"""Security headers on every answer of the cloud API (pure ASGI middleware).

- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: the hosted pay pages and the
  pay-by-plate page cannot be framed by another site to steer a driver's click.
- ``Referrer-Policy: no-referrer``: a pay page's address is its capability (128 random bits);
  the browser must not hand it to the next site (Stripe Checkout, or a link the driver follows).
- ``X-Content-Type-Options: nosniff``; ``Cache-Control: no-store`` unless the route set its own
  (bookings and pay pages carry personal data).
- ``Strict-Transport-Security`` when ``public_url`` is ``https://`` (the address drivers and
  clients use; TLS is usually ended by a proxy in front of the API).

A header the route already set is left as it is.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders"]

HSTS_SECONDS = 365 * 24 * 3600
_ALWAYS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, public_url: str) -> None:
        self.app = app
        self.headers = list(_ALWAYS)
        if public_url.lower().startswith("https://"):
            self.headers.append((b"strict-transport-security", f"max-age={HSTS_SECONDS}".encode()))

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
