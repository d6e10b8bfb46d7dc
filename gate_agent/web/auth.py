"""Operator authentication: sessions, CSRF tokens, login throttling, API tokens.

Design:

- Every page (reads included) needs a logged-in operator: the status page shows plates, which are
  personal data. Operators and their scrypt hashes come from ``web.operators``.
- Sessions (:mod:`gate_agent.web.sessions`): a signed cookie carrying a CSRF token and, once
  logged in, a session token whose hash lives in the agent's store; logout revokes it.
- Every form POST carries the session's CSRF token in a hidden ``csrf`` field (403 when missing or
  wrong). Unauthenticated POSTs get 401 before the body is even read
  (:mod:`gate_agent.web.limits`).
- Login attempts are counted per (username, client address) in the store
  (:mod:`gate_agent.web.throttle`); over the limit the login answers 429 with ``Retry-After``
  without checking the password.
- The JSON API takes ``Authorization: Bearer <web.api_token>`` (401 when absent, 403 when wrong or
  when no token is configured); its GET routes also accept a logged-in session.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request

from gate_agent.config import WebConfig
from gate_agent.web.passwords import hash_password, verify_password
from gate_agent.web.sessions import COOKIE, SESSION_SECONDS, Session, SessionSigner
from gate_agent.web.throttle import LoginThrottle

__all__ = [
    "COOKIE",
    "SESSION_SECONDS",
    "LoginRequired",
    "LoginThrottle",
    "OperatorBook",
    "Session",
    "SessionSigner",
    "bearer_ok",
    "bearer_refusal",
    "check_csrf",
    "client_ip",
    "current_session",
    "require_operator",
]


class LoginRequired(Exception):
    """Raised by :func:`require_operator`; GETs are redirected to /login, other methods get 401."""


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


def bearer_refusal(authorization: str, api_token: str | None) -> HTTPException | None:
    """Why ``authorization`` is not the configured bearer token (401 absent, 403 wrong or no
    token configured), or None when it is."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return HTTPException(
            401, "operator API token required", headers={"WWW-Authenticate": "Bearer"}
        )
    if api_token is None:
        return HTTPException(403, "the JSON API is disabled: no web.api_token configured")
    if not hmac.compare_digest(token.strip().encode(), api_token.encode()):
        return HTTPException(403, "wrong API token")
    return None


def bearer_ok(request: Request, api_token: str | None) -> bool:
    """True for the configured bearer token; raises 401 (no token) or 403 (wrong/disabled)."""
    refusal = bearer_refusal(request.headers.get("authorization", ""), api_token)
    if refusal is not None:
        raise refusal
    return True


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
