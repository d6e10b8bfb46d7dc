"""Bearer tokens and who may see what.

Tokens are random strings shown once; only their SHA-256 digest is stored. Visibility rules:
customers see their own bookings; operators and devices see the lots they are members of (and the
bookings at them); admins see everything. Objects a caller may not see are reported as missing.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import ApiToken, Booking, LotMember, Role, User

__all__ = [
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
