"""Writing to the outbox: work that must leave the database, in the same transaction as the change.

Workers (notifications, payments) read ``OutboxMessage`` rows by ``kind``; nothing here does IO.
Kinds used by the booking core:

- ``payment.create`` — ``{booking_id, amount_cents, currency, kind, idempotency_key}``
- ``payment.refund`` — ``{booking_id, amount_cents, currency, reason, idempotency_key}``
- ``notify.email`` — ``{template, to, booking_id, ...}`` (payment_confirmed, payment_failed,
  refund, reminder)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cloud_api.models import OutboxMessage, utcnow

__all__ = ["enqueue"]


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    available_at: datetime | None = None,
) -> OutboxMessage:
    """Add a message to the session; it is committed (or rolled back) with the caller's change."""
    now = utcnow()
    message = OutboxMessage(
        kind=kind,
        payload=payload,
        created_at=now,
        available_at=available_at or now,
        attempts=0,
        dead=False,
    )
    session.add(message)
    return message
