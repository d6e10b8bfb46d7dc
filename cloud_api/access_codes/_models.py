"""The table of lots' access-code keys (created by the ``qr01`` migration)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import Base
from cloud_api.models import UTCDateTime, utcnow

__all__ = ["LotAccessKey"]


class LotAccessKey(Base):
    """One signing key of a lot. ``retires_at`` None: the lot's current key (one per lot);
    a rotated-out key is accepted by the gate until ``retires_at``, then dropped."""

    __tablename__ = "lot_access_keys"
    __table_args__ = (
        UniqueConstraint("lot_id", "kid", name="uq_lot_access_keys_kid"),
        Index("ix_lot_access_keys_lot", "lot_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"))
    kid: Mapped[str] = mapped_column(String(16))
    secret: Mapped[str] = mapped_column(String(88))  # base64url, no padding
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"LotAccessKey(lot_id={self.lot_id!r}, kid={self.kid!r})"
