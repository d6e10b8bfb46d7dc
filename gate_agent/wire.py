"""The agent's side of the wire contract: its records to and from :mod:`parkgate_protocol`.

The protocol knows nothing of the agent; this module is where the agent's domain records
(:class:`~gate_agent.domain.Reservation`, :class:`~gate_agent.domain.ListEntry`, journaled
events) meet the wire models. Pure, no IO.
"""

from __future__ import annotations

from gate_agent.domain import JournalEvent, ListEntry, Reservation, StayPayment
from parkgate_protocol import (
    AccessCategory,
    AccessKey,
    GateEvent,
    GateEventKind,
    ListEntrySnapshot,
    ProtocolError,
    ReservationSnapshot,
    SigningKey,
)
from parkgate_protocol import StayPayment as StayPaymentSnapshot

__all__ = [
    "gate_event",
    "list_entry",
    "list_entry_snapshot",
    "reservation",
    "reservation_snapshot",
    "signing_key",
    "stay_payment",
]


_RESERVATION_FIELDS = (
    "id",
    "plate",
    "starts_at",
    "ends_at",
    "status",
    "amount_owed_cents",
    "currency",
    "space_label",
)


def reservation(snapshot: ReservationSnapshot) -> Reservation:
    """A pushed reservation as the cache stores it."""
    return Reservation(**{name: getattr(snapshot, name) for name in _RESERVATION_FIELDS})


def reservation_snapshot(r: Reservation) -> ReservationSnapshot:
    """The wire form of a cached reservation (tests and tools that play the cloud)."""
    return ReservationSnapshot(**{name: getattr(r, name) for name in _RESERVATION_FIELDS})


def list_entry(snapshot: ListEntrySnapshot) -> ListEntry:
    """A pushed allow/deny entry as the cache stores it."""
    return ListEntry(
        snapshot.plate,
        snapshot.kind,
        snapshot.valid_from,
        snapshot.valid_until,
        snapshot.note,
        entry_id=snapshot.entry_id,
        category=None if snapshot.category is None else snapshot.category.value,
        lanes=None if snapshot.lanes is None else tuple(snapshot.lanes),
    )


def list_entry_snapshot(entry: ListEntry) -> ListEntrySnapshot:
    """The wire form of a cached list entry (tests and tools that play the cloud)."""
    return ListEntrySnapshot(
        entry_id=entry.entry_id,
        plate=entry.plate,
        kind=entry.kind,
        category=None if entry.category is None else AccessCategory(entry.category),
        valid_from=entry.valid_from,
        valid_until=entry.valid_until,
        note=entry.note,
        lanes=None if entry.lanes is None else list(entry.lanes),
    )


def stay_payment(snapshot: StayPaymentSnapshot) -> StayPayment:
    """A pushed stay payment as the store keeps it."""
    return StayPayment(
        snapshot.stay_id,
        snapshot.paid_cents,
        snapshot.paid_through,
        snapshot.currency,
        snapshot.payment_id,
    )


def gate_event(event: JournalEvent) -> GateEvent:
    """The wire form of a journaled event (``image_path`` and ``sent_at`` stay local)."""
    if event.occurred_at is None:
        raise ProtocolError("invalid", "occurred_at: journaled events have a time")
    return GateEvent(
        event_id=event.event_id,
        lot_id=event.lot_id,
        lane_id=event.lane_id,
        direction=event.direction,
        kind=GateEventKind(str(event.kind)),
        visit_id=event.visit_id,
        stay_id=event.stay_id,
        plate=event.plate,
        read_text=event.read_text,
        confidence=event.confidence,
        reason=event.reason,
        reservation_id=event.reservation_id,
        fuzzy=event.fuzzy,
        amount_owed_cents=event.amount_owed_cents,
        currency=event.currency,
        occurred_at=event.occurred_at,
        detail=event.detail,
    )


def signing_key(key: AccessKey) -> SigningKey:
    """A pushed booking-code key as the gate checks codes with it."""
    return SigningKey(key.kid, key.secret_bytes(), key.retires_at)
