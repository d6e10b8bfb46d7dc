"""Operator sessions: a signed cookie for the browser, a row in the agent's store for the login.

The cookie holds ``{"s": session token or null, "c": CSRF token, "e": expiry}``, base64 +
HMAC-SHA256 with ``web.session_secret`` (random per start when unset). Visitors get one with a
CSRF token before logging in, so the login form is CSRF-protected too. Logging in draws a random
session token and stores its SHA-256 with the operator and an expiry
(:meth:`gate_agent.store.Store.open_operator_session`); every request looks the token up, so
logging out (which deletes the row) or expiry ends the session even for a copied cookie. The
cookie is HttpOnly, SameSite=Strict, and Secure when the UI is served over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gate_agent.store import Store

__all__ = ["COOKIE", "SESSION_SECONDS", "OperatorSessions", "Session", "SessionSigner"]

COOKIE = "pg_session"
SESSION_SECONDS = 12 * 3600


@dataclass
class Session:
    """One browser's session: ``user`` is set only while its token is live in the store."""

    token: str | None
    csrf: str
    expires: float
    user: str | None = None
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
        body = json.dumps({"s": session.token, "c": session.csrf, "e": session.expires})
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
                    token = data["s"]
                    session = Session(
                        None if token is None else str(token), str(data["c"]), float(data["e"])
                    )
                except (ValueError, KeyError, TypeError):
                    return Session.fresh(now)
                if session.expires > now:
                    return session
        return Session.fresh(now)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class OperatorSessions:
    """Logged-in sessions kept in the store: started at login, looked up per request, revoked."""

    def __init__(self, store: Store, signer: SessionSigner) -> None:
        self.store = store
        self.signer = signer

    def resolve(self, session: Session) -> Session:
        """Fill ``session.user`` from the store; a revoked or expired token is dropped."""
        if session.token is None:
            return session
        session.user = self.store.operator_session(_digest(session.token))
        if session.user is None:
            session.token = None
            session.dirty = True
        return session

    def start(self, session: Session, user: str) -> None:
        """Log ``user`` in: a new session token, a new CSRF token, a new expiry."""
        if session.token is not None:
            self.store.close_operator_session(_digest(session.token))
        expires = self.signer.clock() + SESSION_SECONDS
        token = secrets.token_urlsafe(32)
        self.store.open_operator_session(_digest(token), user, datetime.fromtimestamp(expires, UTC))
        session.token, session.user, session.expires = token, user, expires
        session.csrf = secrets.token_urlsafe(24)
        session.dirty = True

    def end(self, session: Session) -> None:
        """Log out: the token is revoked in the store, so a copy of the cookie is useless."""
        if session.token is not None:
            self.store.close_operator_session(_digest(session.token))
        session.token, session.user = None, None
        session.csrf = secrets.token_urlsafe(24)
        session.dirty = True
