"""Bearer tokens and who may see what.

Tokens are random strings shown once; only their SHA-256 digest is stored. Visibility rules:
customers see their own bookings; operators and devices see the lots they are members of (and the
bookings at them); admins see everything. Objects a caller may not see are reported as missing.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import ApiToken, Booking, LotMember, Role, User

__all__ = [
    "TokenCache",
    "can_manage_lot",
    "can_see_booking",
    "hash_token",
    "issue_token",
    "member_lot_ids",
    "user_for_token",
]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User) -> str:
    """Create a bearer token for ``user``; returns the plaintext (it is not stored)."""
    token = "pg_" + secrets.token_urlsafe(24)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), revoked=False))
    return token


def user_for_token(session: Session, token: str) -> User | None:
    stmt = (
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked.is_(False))
    )
    return session.scalars(stmt).first()


class TokenCache:
    """Verified bearer tokens kept in-process for ``ttl`` seconds (digest → detached ``User``).

    Saves a database round trip (and its transaction) per authenticated request. Only successful
    lookups are kept, so a new token works at once; a revoked token or a changed role is seen
    within ``ttl`` seconds. Bounded: the oldest entries are dropped beyond ``max_entries``.
    """

    def __init__(
        self,
        ttl: float = 10.0,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl, self._max, self._monotonic = ttl, max_entries, monotonic
        self._entries: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> User | None:
        digest = hash_token(token)
        entry = self._entries.get(digest)
        if entry is None or entry[0] < self._monotonic():
            return None
        return entry[1]

    def put(self, token: str, user: User) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            while len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            self._entries[hash_token(token)] = (self._monotonic() + self._ttl, user)


def member_lot_ids(session: Session, user: User) -> set[int]:
    return set(session.scalars(select(LotMember.lot_id).where(LotMember.user_id == user.id)))


def can_manage_lot(session: Session, user: User, lot_id: int) -> bool:
    """Admins manage every lot; operators (and devices) their member lots."""
    if user.role == Role.ADMIN.value:
        return True
    if user.role in (Role.OPERATOR.value, Role.DEVICE.value):
        return lot_id in member_lot_ids(session, user)
    return False


def can_see_booking(session: Session, user: User, booking: Booking) -> bool:
    if booking.user_id == user.id or user.role == Role.ADMIN.value:
        return True
    return can_manage_lot(session, user, booking.lot_id)
