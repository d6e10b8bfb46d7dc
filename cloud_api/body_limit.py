"""Request body limits in front of the cloud app (ASGI middleware).

Every request body is refused with ``413`` and a reason *before* the app reads it when it is
larger than its route's limit: at once when ``Content-Length`` says so, else as soon as the
streamed bytes (chunked uploads, or a lying ``Content-Length``) pass the limit — reading stops
there. A body within its limit is buffered (at most the limit) and handed to the app unchanged.

Limits (:class:`BodyLimits`): the payment webhook 256 KiB (the provider's events are small),
the access-list CSV import a few MiB, every other route (JSON) a small limit. A malformed
``Content-Length`` is a ``400``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "BodyLimits"]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/payments/webhook"
IMPORT_PATH = re.compile(r"^/lots/[^/]+/access-list/import$")


@dataclass(frozen=True)
class BodyLimits:
    """The largest body (bytes) each kind of route accepts."""

    json: int = 64 * 1024
    csv_import: int = 5 * 1024 * 1024
    webhook: int = 256 * 1024

    def for_path(self, path: str) -> tuple[int, str]:
        """The limit of ``path`` and the name it is reported under."""
        if path == WEBHOOK_PATH:
            return self.webhook, "webhook"
        if IMPORT_PATH.match(path):
            return self.csv_import, "csv_import"
        return self.json, "json"


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware enforcing :class:`BodyLimits` (see the module docstring)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, name = self.limits.for_path(scope["path"])
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(send, scope, 400, "bad_content_length", "Content-Length is not a number")
            return
        if declared is not None and declared > limit:
            await _too_large(send, scope, limit, name)
            return
        try:
            body, more = await _read_at_most(receive, limit)
        except _TooLarge:
            await _too_large(send, scope, limit, name)
            return
        await self.app(scope, _replay(body, more, receive), send)


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when absent, -1 when malformed."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 19 else -1
    return None


async def _read_at_most(receive: Receive, limit: int) -> tuple[bytes, Message | None]:
    """The whole body, or :class:`_TooLarge` as soon as it passes ``limit`` bytes. Also returns
    a non-body message received instead (a disconnect), to be handed on to the app."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, other: Message | None, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if other is not None and not body:
                return other
            return {"type": "http.request", "body": body, "more_body": False}
        if other is not None:
            return other
        return await receive()

    return replay


async def _too_large(send: Send, scope: Scope, limit: int, name: str) -> None:
    log.info("refused a %s body over %d bytes on %s", name, limit, scope["path"])
    await _refuse(send, scope, 413, "body_too_large", f"this route takes at most {limit} bytes")


async def _refuse(send: Send, scope: Scope, status: int, reason: str, detail: str) -> None:
    answer: dict[str, str] = {"reason": reason, "detail": detail}
    if scope["path"] == WEBHOOK_PATH:  # the webhook's own answer shape ({"result": ...})
        answer["result"] = "too_large" if status == 413 else reason
    body = json.dumps(answer).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),  # the rest of the body is not read
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
