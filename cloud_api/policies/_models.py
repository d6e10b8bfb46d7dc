"""Tables of lot policies, access lists and their audit log (created by the ``po01`` migration).

``lot_id`` is the cloud's integer lot id; plates are stored normalised (upper case, letters and
digits), as bookings store them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import Base
from cloud_api.models import UTCDateTime, utcnow

__all__ = ["AccessListEntry", "LotAuditEntry", "LotPolicyVersion"]


class LotPolicyVersion(Base):
    """One version of a lot's policy (every version is kept); the highest is in force."""

    __tablename__ = "lot_policies"
    __table_args__ = (UniqueConstraint("lot_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # LotPolicy.to_wire()
    created_by: Mapped[int | None] = mapped_column(Integer, default=None)  # users.id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessListEntry(Base):
    """An allow or deny entry for a plate at a lot, optionally limited to a window and lanes."""

    __tablename__ = "access_list_entries"
    __table_args__ = (Index("ix_access_list_lot_plate", "lot_id", "plate"),)

    entry_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "acl_" + hex
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"))
    plate: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))  # allow | deny
    category: Mapped[str] = mapped_column(String(16))  # staff | resident | permit | blocked
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    note: Mapped[str] = mapped_column(String(500), default="")
    lanes: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    created_by: Mapped[int | None] = mapped_column(Integer, default=None)  # users.id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LotAuditEntry(Base):
    """Who changed a lot's policy or access list, and what (a policy's field diff)."""

    __tablename__ = "lot_audit"
    __table_args__ = (Index("ix_lot_audit_lot_time", "lot_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(Integer, default=None)
    actor: Mapped[str] = mapped_column(String(320), default="")  # the user's email at the time
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
