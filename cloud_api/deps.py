"""FastAPI dependencies: the database session, the clock, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.orm import Session

from cloud_api.auth import user_for_token
from cloud_api.models import Role, User

__all__ = ["ApiError", "Caller", "Db", "LotId", "Now", "require_role"]

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


def _now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def _caller(
    db: Annotated[Session, Depends(_session)],
    authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
) -> User:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>")
    user = user_for_token(db, token.strip())
    if user is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked token")
    db.expunge(user)
    db.rollback()  # end the read transaction now (on SQLite it holds the write lock)
    return user


Db = Annotated[Session, Depends(_session)]
Now = Annotated[datetime, Depends(_now)]
Caller = Annotated[User, Depends(_caller)]


def require_role(user: User, *roles: Role) -> None:
    if user.role not in {r.value for r in roles}:
        raise ApiError(403, "forbidden", f"needs role {' or '.join(r.value for r in roles)}")
