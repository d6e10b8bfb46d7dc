"""SQLAlchemy 2 typed models of the cloud booking API.

Times are timezone-aware UTC ``datetime`` values in Python; ``UTCDateTime`` stores them as
``timestamptz`` on PostgreSQL and as naive UTC text on SQLite (so text comparison is time order).
Money is integer cents in the lot's currency.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from cloud_api.db import Base

__all__ = [
    "ACTIVE_STATUSES",
    "AntiPassback",
    "ApiToken",
    "Booking",
    "BookingStatus",
    "EarlyExitPolicy",
    "EventLog",
    "IdempotencyRecord",
    "Lot",
    "LotChange",
    "LotMember",
    "LotPrice",
    "OutboxMessage",
    "Payment",
    "PaymentKind",
    "RateHit",
    "Role",
    "Space",
    "Stay",
    "StayKind",
    "StayStatus",
    "UTCDateTime",
    "User",
    "Vehicle",
    "VehicleType",
    "new_public_id",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; naive values are rejected on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Role(StrEnum):
    CUSTOMER = "customer"
    OPERATOR = "operator"
    ADMIN = "admin"
    DEVICE = "device"  # one gate agent per lot


class VehicleType(StrEnum):
    CAR = "car"
    MOTORCYCLE = "motorcycle"
    EV = "ev"
    VAN = "van"
    ACCESSIBLE = "accessible"


class BookingStatus(StrEnum):
    PENDING = "pending"  # awaiting payment until hold_expires_at
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    COMPLETED = "completed"


ACTIVE_STATUSES = (BookingStatus.PENDING.value, BookingStatus.CONFIRMED.value)


class EarlyExitPolicy(StrEnum):
    NONE = "none"
    PRO_RATA = "pro_rata"
    WHOLE_HOURS = "whole_hours"
    PRO_RATA_MINUS_FEE = "pro_rata_minus_fee"


class AntiPassback(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    OFF = "off"


class PaymentKind(StrEnum):
    CHARGE = "charge"  # a booking's price (tag "initial" confirms it)
    REFUND = "refund"
    OVERSTAY = "overstay"
    STAY = "stay"  # a parking session's payment (pay by plate): ``stay_id`` set, no booking
    EXTENSION = "extension"  # the extra time of an extended booking (owed until paid)


def new_public_id() -> str:
    """A payment's unguessable public id (128 random bits): its pay page's address."""
    return secrets.token_hex(16)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(40), default=None)
    role: Mapped[str] = mapped_column(String(16), default=Role.CUSTOMER.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Vehicle(Base):
    __tablename__ = "vehicles"
    __table_args__ = (UniqueConstraint("user_id", "plate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    plate: Mapped[str] = mapped_column(String(16))
    vehicle_type: Mapped[str] = mapped_column(String(16), default=VehicleType.CAR.value)


class Lot(Base):
    __tablename__ = "lots"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400), default="")
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    country: Mapped[str] = mapped_column(String(2), index=True)  # ISO 3166-1 alpha-2
    city: Mapped[str] = mapped_column(String(120), index=True)
    capacity: Mapped[int] = mapped_column(Integer, default=0)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    early_grace_minutes: Mapped[int] = mapped_column(Integer, default=15)
    late_grace_minutes: Mapped[int] = mapped_column(Integer, default=15)
    overstay_grace_minutes: Mapped[int] = mapped_column(Integer, default=10)
    early_exit_policy: Mapped[str] = mapped_column(String(24), default=EarlyExitPolicy.NONE.value)
    early_exit_fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    hold_minutes: Mapped[int] = mapped_column(Integer, default=15)
    anti_passback: Mapped[str] = mapped_column(String(8), default=AntiPassback.HARD.value)
    change_seq: Mapped[int] = mapped_column(Integer, default=0)  # last lot_changes.seq issued
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LotPrice(Base):
    """Hourly rate and daily cap of one vehicle type at one lot."""

    __tablename__ = "lot_prices"
    __table_args__ = (UniqueConstraint("lot_id", "vehicle_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"))
    vehicle_type: Mapped[str] = mapped_column(String(16))
    hourly_cents: Mapped[int] = mapped_column(Integer)
    daily_cap_cents: Mapped[int] = mapped_column(Integer)


class LotMember(Base):
    """Operators (and the lot's device account) belong to lots."""

    __tablename__ = "lot_members"

    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Space(Base):
    __tablename__ = "spaces"
    __table_args__ = (UniqueConstraint("lot_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(32))
    vehicle_type: Mapped[str] = mapped_column(String(16), default=VehicleType.CAR.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Booking(Base):
    """A reservation of one space for a time window; ``id`` is the reservation ID the gate sees."""

    __tablename__ = "bookings"
    __table_args__ = (
        Index("ix_bookings_space_window", "space_id", "start_time", "end_time"),
        Index("ix_bookings_lot_plate", "lot_id", "plate"),
        Index("ix_bookings_status_hold", "status", "hold_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # "bk_" + 16 base32 chars
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id"))
    plate: Mapped[str] = mapped_column(String(16))
    vehicle_type: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=BookingStatus.PENDING.value)
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    amount_owed_cents: Mapped[int] = mapped_column(Integer, default=0)
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    policy_version: Mapped[int | None] = mapped_column(Integer, default=None)  # priced with


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[str | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    # a stay's payment (kind "stay"): stays.id (the st01 migration's foreign key; no ORM-level
    # one, so this module need not import cloud_api.stays) and the moment it was priced through
    stay_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    paid_through: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24), default="pending")
    provider: Mapped[str] = mapped_column(String(24), default="local")
    provider_ref: Mapped[str | None] = mapped_column(String(128), default=None, index=True)
    kind: Mapped[str] = mapped_column(String(16), default=PaymentKind.CHARGE.value)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # migration pm01: the pay page, the checkout, and the money actually moved
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    captured_cents: Mapped[int] = mapped_column(Integer, default=0)  # taken by the provider
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0)  # of it, asked back
    refund_of: Mapped[int | None] = mapped_column(Integer, default=None)  # a refund's charge
    checkout_ref: Mapped[str | None] = mapped_column(String(128), default=None, index=True)
    checkout_url: Mapped[str | None] = mapped_column(Text, default=None)
    checkouts: Mapped[int] = mapped_column(Integer, default=0)  # expired checkouts so far


class OutboxMessage(Base):
    """Work that must leave the database (payment calls, emails), written with the change."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "dead", "available_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    dead: Mapped[bool] = mapped_column(Boolean, default=False)
    # committed by the worker's claim before the handler runs, cleared with the outcome (cf01)
    handling_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class LotChange(Base):
    """Per-lot, gap-free ordered reservation changes the MQTT relay publishes to the gate."""

    __tablename__ = "lot_changes"
    __table_args__ = (
        UniqueConstraint("lot_id", "seq"),
        Index(
            "ix_lot_changes_unrelayed",
            "lot_id",
            "seq",
            postgresql_where=text("relayed_at IS NULL"),
            sqlite_where=text("relayed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    relayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)  # on PUBACK


class EventLog(Base):
    __tablename__ = "event_log"
    __table_args__ = (Index("ix_event_log_lot_time", "lot_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    lot_id: Mapped[int | None] = mapped_column(Integer, default=None)
    booking_id: Mapped[str | None] = mapped_column(String(24), default=None, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyRecord(Base):
    """The first response to a request with an ``Idempotency-Key``, replayed on retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """Bearer tokens, stored as SHA-256 hex digests only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)  # None: never


# -- stays: one parking session per car's stay at a lot (st01; behaviour in ``cloud_api.stays``) --
# ``session_id`` is the public, unguessable id pay by plate hands out; ``gate_stay_id`` is the
# lot's ``GateEvent.stay_id`` (the visit id of the entry pass), unique per lot. Money: the stay's
# gross price is ``amount_due_cents`` once it is closed (while open it is priced on demand);
# ``paid_cents`` is what captured payments applied to it, ``paid_through`` the moment they covered.
# Here, beside ``Booking``, so that booking rules can read a booking's stay without importing
# the stays package (which imports bookings).


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


class RateHit(Base):
    """Hits of one rate-limit key in one time bucket (``cloud_api.rate_limits``): shared by
    every API worker and process, so a limit is the same however many serve."""

    __tablename__ = "rate_hits"
    __table_args__ = (Index("ix_rate_hits_bucket", "bucket"),)

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)  # start, seconds since epoch
    hits: Mapped[int] = mapped_column(Integer, default=0)
