"""Bearer tokens and who may see what.

Tokens are random strings shown once; only their SHA-256 digest is stored. A token stops working
when it is revoked (``POST /auth/tokens/revoke``, a device token rotation) or past its
``expires_at`` (set from the settings' lifetime when the API issues it; ``NULL`` never expires:
seeded and pre-``ct01`` tokens). Visibility rules:
customers see their own bookings; operators and devices see the lots they are members of (and the
bookings at them); admins see everything. Objects a caller may not see are reported as missing.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from cloud_api.models import ApiToken, Booking, LotMember, Role, User
from cloud_api.settings import Settings

__all__ = [
    "TokenCache",
    "can_manage_lot",
    "can_see_booking",
    "hash_token",
    "issue_token",
    "lot_device",
    "member_lot_ids",
    "revoke_token",
    "revoke_user_tokens",
    "token_expiry",
    "user_for_token",
]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, *, expires_at: datetime | None = None) -> str:
    """Create a bearer token for ``user`` valid until ``expires_at`` (None: no expiry); returns
    the plaintext (it is not stored)."""
    token = "pg_" + secrets.token_urlsafe(24)
    row = ApiToken(
        user_id=user.id, token_hash=hash_token(token), revoked=False, expires_at=expires_at
    )
    session.add(row)
    return token


def token_expiry(settings: Settings, role: Role, now: datetime) -> datetime:
    """When a token issued now for an account of ``role`` expires (the settings' lifetimes)."""
    days = (
        settings.device_token_lifetime_days if role == Role.DEVICE else settings.token_lifetime_days
    )
    return now + timedelta(days=days)


def user_for_token(
    session: Session, token: str, now: datetime | None = None
) -> tuple[User, datetime | None] | None:
    """The token's user and its expiry, if the token is known, not revoked and (given ``now``)
    not expired."""
    stmt = (
        select(User, ApiToken.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked.is_(False))
    )
    if now is not None:
        stmt = stmt.where(or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row is not None else None


def revoke_token(session: Session, token: str) -> int:
    """Revoke one token (by its plaintext); returns how many rows changed (0 or 1)."""
    done = session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked.is_(False))
        .values(revoked=True)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def revoke_user_tokens(session: Session, user_id: int) -> int:
    """Revoke every token of a user; returns how many were still live."""
    done = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked.is_(False))
        .values(revoked=True)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def lot_device(session: Session, lot_id: int) -> User | None:
    """The lot's device account (the first one, as ``cloud-api provision-lot`` makes it)."""
    stmt = (
        select(User)
        .join(LotMember, LotMember.user_id == User.id)
        .where(LotMember.lot_id == lot_id, User.role == Role.DEVICE.value)
        .order_by(User.id)
    )
    return session.scalars(stmt).first()


class TokenCache:
    """Verified bearer tokens kept in-process for ``ttl`` seconds (digest → detached ``User`` and
    the token's expiry).

    Saves a database round trip (and its transaction) per authenticated request. Only successful
    lookups are kept, so a new token works at once; a token revoked through this process is
    forgotten at once (:meth:`forget`), through another process or a changed role is seen within
    ``ttl`` seconds; an expired token is refused at once (:meth:`get` takes the time). Bounded:
    the oldest entries are dropped beyond ``max_entries``.
    """

    def __init__(
        self,
        ttl: float = 10.0,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl, self._max, self._monotonic = ttl, max_entries, monotonic
        self._entries: dict[str, tuple[float, User, datetime | None]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, now: datetime | None = None) -> User | None:
        digest = hash_token(token)
        entry = self._entries.get(digest)
        if entry is None or entry[0] < self._monotonic():
            return None
        if now is not None and entry[2] is not None and entry[2] <= now:
            return None
        return entry[1]

    def put(self, token: str, user: User, expires_at: datetime | None = None) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            while len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            self._entries[hash_token(token)] = (self._monotonic() + self._ttl, user, expires_at)

    def forget(self, token: str) -> None:
        with self._lock:
            self._entries.pop(hash_token(token), None)

    def forget_user(self, user_id: int) -> None:
        """Drop every cached token of a user (all of them revoked)."""
        with self._lock:
            for digest in [d for d, e in self._entries.items() if e[1].id == user_id]:
                del self._entries[digest]


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
