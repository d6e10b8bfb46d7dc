"""The audit log of a lot's policy and access-list changes: who, when, what."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.models import User
from cloud_api.policies._models import LotAuditEntry

__all__ = ["audit", "audit_trail"]


def audit(
    session: Session,
    lot_id: int,
    actor: User | None,
    action: str,
    detail: dict[str, Any],
    now: datetime,
) -> None:
    """Record a change in the same transaction as the change itself."""
    session.add(
        LotAuditEntry(
            lot_id=lot_id,
            actor_id=actor.id if actor else None,
            actor=actor.email if actor else "",
            action=action,
            detail=detail,
            created_at=now,
        )
    )


def audit_trail(session: Session, lot_id: int, limit: int = 100) -> list[LotAuditEntry]:
    """The lot's newest audit entries first."""
    stmt = (
        select(LotAuditEntry)
        .where(LotAuditEntry.lot_id == lot_id)
        .order_by(LotAuditEntry.created_at.desc(), LotAuditEntry.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
