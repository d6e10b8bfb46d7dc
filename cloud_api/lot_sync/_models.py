"""Tables of the lot ↔ cloud sync: gate events (once per ``event_id``), ingest dead letters, the
lots' last status, and operator commands waiting for the relay.

Created by the ``sy01`` migration. ``lot_id`` is the cloud's integer lot id; on the wire it is its
decimal string (``docs/protocol.md``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import Base
from cloud_api.models import UTCDateTime, utcnow

__all__ = ["GateEventRecord", "IngestDeadLetter", "LotCommand", "LotStatus"]


class GateEventRecord(Base):
    """A lot's gate event, stored exactly once (``event_id`` is the primary key)."""

    __tablename__ = "gate_events"
    __table_args__ = (Index("ix_gate_events_lot_time", "lot_id", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"))
    lane_id: Mapped[str | None] = mapped_column(String(64), default=None)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    reservation_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    visit_id: Mapped[str | None] = mapped_column(String(64), default=None)
    plate: Mapped[str | None] = mapped_column(String(128), default=None)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(64), default="stored")
    """What the cloud did with it: stored, arrived, exited, or why the booking was left alone."""
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class IngestDeadLetter(Base):
    """An MQTT message the ingest could not use, with the reason (never retried by itself)."""

    __tablename__ = "ingest_dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text, default="")
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LotStatus(Base):
    """The latest retained ``status`` (heartbeat or last will) of each lot."""

    __tablename__ = "lot_status"

    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    outbox_depth: Mapped[int | None] = mapped_column(Integer, default=None)
    last_applied_seq: Mapped[int | None] = mapped_column(Integer, default=None)
    policy_version: Mapped[int | None] = mapped_column(Integer, default=None)  # in force
    policy_problem: Mapped[str | None] = mapped_column(String(500), default=None)
    lanes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cars_inside: Mapped[int | None] = mapped_column(Integer, default=None)  # as the lot counts
    drive_up_inside: Mapped[int | None] = mapped_column(Integer, default=None)  # of those
    clock_offset_s: Mapped[float | None] = mapped_column(Float, default=None)  # lot minus cloud
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LotCommand(Base):
    """An operator's command to a lot; the relay publishes it (QoS 1) and sets ``published_at``."""

    __tablename__ = "lot_commands"
    __table_args__ = (Index("ix_lot_commands_pending", "published_at", "created_at"),)

    command_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    lane_id: Mapped[str | None] = mapped_column(String(64), default=None)
    actor: Mapped[str | None] = mapped_column(String(128), default=None)
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    full: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)  # published / expired
