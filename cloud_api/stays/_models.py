"""The ``stays`` table: one parking session per car's stay at a lot (created by ``st01``).

``session_id`` is the public, unguessable id pay by plate hands out; ``gate_stay_id`` is the
lot's ``GateEvent.stay_id`` (the visit id of the entry pass), unique per lot. Money: the stay's
gross price is ``amount_due_cents`` once it is closed (while open it is priced on demand);
``paid_cents`` is what captured payments applied to it, ``paid_through`` the moment they covered.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import Base
from cloud_api.models import UTCDateTime, VehicleType, utcnow

__all__ = ["Stay", "StayKind", "StayStatus"]


class StayKind(StrEnum):
    BOOKING = "booking"  # the car of a reservation
    DRIVE_UP = "drive_up"  # admitted without a booking; priced at exit on the tariff
    PERMIT = "permit"  # allow-listed (staff, residents, permits): owes nothing


class StayStatus(StrEnum):
    OPEN = "open"  # the car is inside
    CLOSED = "closed"  # it left; it may still owe (amount_due_cents > paid_cents)


class Stay(Base):
    __tablename__ = "stays"
    __table_args__ = (
        UniqueConstraint("lot_id", "gate_stay_id", name="uq_stays_lot_gate_stay"),
        Index("ix_stays_lot_plate", "lot_id", "plate"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(String(32), unique=True)  # "ps_" + 26 base32 chars
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"))
    gate_stay_id: Mapped[str] = mapped_column(String(64))
    plate: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    booking_id: Mapped[str | None] = mapped_column(
        ForeignKey("bookings.id"), default=None, index=True
    )
    entry_event_id: Mapped[str | None] = mapped_column(String(64), default=None)
    exit_event_id: Mapped[str | None] = mapped_column(String(64), default=None)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    policy_version: Mapped[int | None] = mapped_column(Integer, default=None)  # tariff of entry
    vehicle_type: Mapped[str] = mapped_column(String(16), default=VehicleType.CAR.value)
    amount_due_cents: Mapped[int] = mapped_column(Integer, default=0)
    paid_cents: Mapped[int] = mapped_column(Integer, default=0)
    paid_through: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    status: Mapped[str] = mapped_column(String(16), default=StayStatus.OPEN.value)
    time_flag: Mapped[str | None] = mapped_column(String(64), default=None)
    overstay_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
