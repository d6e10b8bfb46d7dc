"""Operator authentication: signed session cookies, CSRF tokens, login throttling, API tokens.

Design:

- Every page (reads included) needs a logged-in operator: the status page shows plates, which are
  personal data. Operators and their scrypt hashes come from ``web.operators``.
- The session is a cookie holding ``{"u": user, "c": csrf, "e": expiry}``, base64 + HMAC-SHA256
  with ``web.session_secret`` (random per start when unset, so restarts log everyone out).
  HttpOnly, SameSite=Strict. Visitors get a session with a CSRF token before logging in, so the
  login form is CSRF-protected too; logging in rotates the token.
- Every form POST carries the session's CSRF token in a hidden ``csrf`` field (403 when missing or
  wrong). Unauthenticated POSTs get 401 before the token is even looked at.
- Login failures are counted per client IP and per username in a sliding window; over the limit
  the login answers 429 with ``Retry-After`` without checking the password.
- The JSON API takes ``Authorization: Bearer <web.api_token>`` (401 when absent, 403 when wrong or
  when no token is configured); its GET routes also accept a logged-in session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from gate_agent.config import WebConfig
from gate_agent.web.passwords import hash_password, verify_password

__all__ = [
    "COOKIE",
    "SESSION_SECONDS",
    "LoginRequired",
    "LoginThrottle",
    "OperatorBook",
    "Session",
    "SessionSigner",
    "bearer_ok",
    "check_csrf",
    "current_session",
    "require_operator",
]

COOKIE = "pg_session"
SESSION_SECONDS = 12 * 3600


class LoginRequired(Exception):
    """Raised by :func:`require_operator`; GETs are redirected to /login, other methods get 401."""


@dataclass
class Session:
    user: str | None
    csrf: str
    expires: float
    dirty: bool = False

    @classmethod
    def fresh(cls, now: float) -> Session:
        return cls(None, secrets.token_urlsafe(24), now + SESSION_SECONDS, dirty=True)


class SessionSigner:
    """Signs and checks session cookies (HMAC-SHA256 over the base64 payload)."""

    def __init__(self, secret: str | None, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256((secret or secrets.token_hex(32)).encode()).digest()
        self.clock = clock

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, "sha256").digest()).decode()

    def dumps(self, session: Session) -> str:
        body = json.dumps({"u": session.user, "c": session.csrf, "e": session.expires})
        payload = base64.urlsafe_b64encode(body.encode())
        return f"{payload.decode()}.{self._sign(payload)}"

    def loads(self, cookie: str | None) -> Session:
        """The session in ``cookie``, or a fresh anonymous one when absent, forged or expired."""
        now = self.clock()
        if cookie and "." in cookie:
            payload, signature = cookie.rsplit(".", 1)
            if hmac.compare_digest(self._sign(payload.encode()), signature):
                try:
                    data = json.loads(base64.urlsafe_b64decode(payload.encode()))
                    session = Session(data["u"], str(data["c"]), float(data["e"]))
                except (ValueError, KeyError, TypeError):
                    return Session.fresh(now)
                if session.expires > now:
                    return session
        return Session.fresh(now)


@dataclass
class LoginThrottle:
    """At most ``max_failures`` failed logins per IP and per username within ``window_s``."""

    max_failures: int = 5
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        cutoff = self.clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def retry_after(self, ip: str, user: str) -> float | None:
        """Seconds until another attempt is allowed, or None when allowed now."""
        waits = []
        for key in (f"ip:{ip}", f"user:{user.lower()}"):
            times = self._recent(key)
            if len(times) >= self.max_failures:
                waits.append(times[0] + self.window_s - self.clock())
        return max(waits) if waits else None

    def failed(self, ip: str, user: str) -> None:
        now = self.clock()
        for key in (f"ip:{ip}", f"user:{user.lower()}"):
            self._recent(key).append(now)

    def succeeded(self, user: str) -> None:
        self._failures.pop(f"user:{user.lower()}", None)


class OperatorBook:
    """The configured operators; checks a password in constant-ish time for unknown names too."""

    def __init__(self, web: WebConfig) -> None:
        self._hashes = {op.username: op.password_hash for op in web.operators}
        self._dummy = hash_password(secrets.token_hex(8)) if not self._hashes else None

    def check(self, username: str, password: str) -> bool:
        encoded = self._hashes.get(username)
        if encoded is None:
            verify_password(password, self._dummy or next(iter(self._hashes.values())))
            return False
        return verify_password(password, encoded)


def current_session(request: Request) -> Session:
    session: Session = request.state.session
    return session


def require_operator(request: Request) -> str:
    """FastAPI dependency: the logged-in operator's name, else :class:`LoginRequired`."""
    user = current_session(request).user
    if not user:
        raise LoginRequired()
    return user


async def check_csrf(request: Request) -> None:
    """FastAPI dependency for form POSTs: the form's ``csrf`` must be the session's token."""
    form = await request.form()
    token = form.get("csrf")
    expected = current_session(request).csrf
    if not isinstance(token, str) or not hmac.compare_digest(token, expected):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")


def bearer_ok(request: Request, api_token: str | None) -> bool:
    """True for the configured bearer token; raises 401 (no token) or 403 (wrong/disabled)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401, "operator API token required", headers={"WWW-Authenticate": "Bearer"}
        )
    if api_token is None:
        raise HTTPException(403, "the JSON API is disabled: no web.api_token configured")
    if not hmac.compare_digest(token.strip().encode(), api_token.encode()):
        raise HTTPException(403, "wrong API token")
    return True


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
