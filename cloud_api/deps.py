"""FastAPI dependencies: the database session, the clock, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from cloud_api.auth import TokenCache, user_for_token
from cloud_api.models import Role, User

__all__ = ["ApiError", "BearerToken", "Caller", "Db", "LotId", "Now", "require_role"]

LotId = Annotated[int, Path(ge=1, le=2**31 - 1, description="parking lot id")]


class ApiError(Exception):
    """An HTTP answer with a reason code, raised from routes."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.status, self.reason, self.detail = status, reason, detail or reason


async def _session(request: Request) -> AsyncIterator[Session]:
    """One session per request, closed on the event loop.

    Closing must not wait for a threadpool slot: on SQLite a session that has read holds the
    ``BEGIN IMMEDIATE`` write lock, and slots may all be taken by requests waiting for that lock.
    """
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


async def _now(request: Request) -> datetime:
    """Async so that FastAPI does not spend a threadpool hop on reading the clock."""
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def _lookup_user(
    sessions: sessionmaker[Session], token: str, now: datetime
) -> tuple[User, datetime | None] | None:
    """The token's user, detached, and the token's expiry, from a session of its own (closed at
    once: on SQLite a session that has read holds the write lock)."""
    with sessions() as db:
        found = user_for_token(db, token, now)
        if found is not None:
            db.expunge(found[0])
        return found


async def _caller(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
) -> User:
    """The token's user: from the in-process ``TokenCache``, else one query in the threadpool.
    No request session: a route that needs none (``POST /bookings`` on PostgreSQL) opens none."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>")
    tokens: TokenCache = request.app.state.tokens
    now = request.app.state.clock()
    user = tokens.get(token, now)
    if user is None:
        found = await run_in_threadpool(_lookup_user, request.app.state.sessions, token, now)
        if found is None:
            raise ApiError(401, "unauthenticated", "unknown, revoked or expired token")
        user, expires_at = found
        tokens.put(token, user, expires_at)
    return user


async def _bearer(
    authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
) -> str:
    """The caller's token itself (after :data:`Caller` has checked it), for revoking it."""
    return (authorization or "").partition(" ")[2].strip()


Db = Annotated[Session, Depends(_session)]
Now = Annotated[datetime, Depends(_now)]
Caller = Annotated[User, Depends(_caller)]
BearerToken = Annotated[str, Depends(_bearer)]


def require_role(user: User, *roles: Role) -> None:
    if user.role not in {r.value for r in roles}:
        raise ApiError(403, "forbidden", f"needs role {' or '.join(r.value for r in roles)}")
