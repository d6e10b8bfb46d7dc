"""Stays from gate events: an entry opens one, its exit closes it, a denied exit with
``payment_due`` makes a booking's stay owe its overstay.

The ingest (``cloud_api.lot_sync``) calls these in the transaction that stores the event; the
booking side (arrival, exit, credit, overstay) stays in ``cloud_api.visits``. Times are bounded
like a booking's (:mod:`cloud_api.reported_times`): clamped and flagged on the stay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api.bookings import notify
from cloud_api.changes import log_event
from cloud_api.models import Booking, Stay, StayKind, StayStatus
from cloud_api.policies import current_policy
from cloud_api.reported_times import bound_reported_time
from cloud_api.stays._ledger import (
    find_stay,
    new_session_id,
    stay_terms,
    void_unpaid_stay_payments,
)
from cloud_api.stays._owed import gross_price
from cloud_api.visits import StayPaid

__all__ = [
    "GatePass",
    "close_stay",
    "note_payment_due",
    "open_stay",
    "paid_so_far",
    "stay_for_exit",
]

log = logging.getLogger(__name__)

BILL_LATER = "bill_later"


@dataclass(frozen=True, slots=True)
class GatePass:
    """What the stays need of a gate event."""

    event_id: str | None  # None: reported over HTTP (PUT /parkingAccess)
    gate_stay_id: str | None
    plate: str | None
    reason: str | None
    occurred_at: datetime
    amount_owed_cents: int = 0


def _entry_kind(reason: str | None, booking: Booking | None) -> StayKind:
    if booking is not None:
        return StayKind.BOOKING
    return StayKind.PERMIT if reason == "allowlisted" else StayKind.DRIVE_UP


def _stay_key(gate_pass: GatePass, booking: Booking | None) -> str | None:
    """The lot's stay id; a gate that sends none (older agents, PUT /parkingAccess) ties a
    booking's passes by the booking id."""
    if gate_pass.gate_stay_id:
        return gate_pass.gate_stay_id
    return f"booking:{booking.id}" if booking is not None else None


def open_stay(
    session: Session,
    lot_id: int,
    gate_pass: GatePass,
    booking: Booking | None,
    *,
    now: datetime,
    skew: timedelta,
) -> Stay | None:
    """The stay the entry opens (the one already open for it on a re-sent event); None when
    the pass cannot be tied to a stay (no stay id and no booking) or has no plate."""
    key = _stay_key(gate_pass, booking)
    if key is None or not gate_pass.plate:
        return None
    known = find_stay(session, lot_id, key) or _open_stay_of(session, booking)
    if known is not None:
        return known
    entered = bound_reported_time(gate_pass.occurred_at, not_before=None, now=now, skew=skew)
    policy = current_policy(session, lot_id)
    stay = Stay(
        session_id=new_session_id(),
        lot_id=lot_id,
        gate_stay_id=key,
        plate=gate_pass.plate,
        kind=_entry_kind(gate_pass.reason, booking).value,
        booking_id=booking.id if booking else None,
        entry_event_id=gate_pass.event_id,
        entered_at=entered.at,
        policy_version=policy.version,
        vehicle_type=booking.vehicle_type if booking else "car",
        currency=booking.currency if booking else policy.tariff.currency,
        status=StayStatus.OPEN.value,
        time_flag=entered.flag,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(stay)
            session.flush()
    except IntegrityError:  # a concurrent ingest opened it
        return find_stay(session, lot_id, key)
    log_event(session, "stay.opened", now, lot_id=lot_id, stay=stay.session_id, stay_kind=stay.kind)
    return stay


def _open_stay_of(session: Session, booking: Booking | None) -> Stay | None:
    if booking is None:
        return None
    return session.scalars(
        select(Stay).where(Stay.booking_id == booking.id, Stay.status == StayStatus.OPEN.value)
    ).first()


def stay_for_exit(
    session: Session, lot_id: int, gate_pass: GatePass, booking: Booking | None
) -> Stay | None:
    """The stay an exit (or a denied exit) closes: by the lot's stay id, else the booking's
    open stay. Locked for the update."""
    key = _stay_key(gate_pass, booking)
    stay = find_stay(session, lot_id, key, for_update=True) if key else None
    if stay is None and booking is not None:
        stay = session.scalars(
            select(Stay)
            .where(Stay.booking_id == booking.id, Stay.status == StayStatus.OPEN.value)
            .with_for_update()
        ).first()
    return stay


def paid_so_far(stay: Stay | None) -> StayPaid | None:
    if stay is None or not stay.paid_cents:
        return None
    return StayPaid(stay.paid_cents, stay.paid_through)


def close_stay(
    session: Session,
    stay: Stay,
    gate_pass: GatePass,
    *,
    now: datetime,
    skew: timedelta,
    booking_overstay_cents: int = 0,
) -> int:
    """Close the stay at its bounded exit time; returns what it still owes. A booking's stay
    owes the overstay the booking's exit left (``booking_overstay_cents``); a drive-up its price
    on its tariff less what was paid (a ``bill_later`` exit: the amount the gate journaled)."""
    if stay.status == StayStatus.CLOSED:
        return max(0, stay.amount_due_cents - stay.paid_cents)
    exited = bound_reported_time(
        gate_pass.occurred_at, not_before=stay.entered_at, now=now, skew=skew
    )
    stay.exited_at = exited.at
    stay.exit_event_id = gate_pass.event_id
    stay.status = StayStatus.CLOSED.value
    stay.time_flag = stay.time_flag or exited.flag
    stay.updated_at = now
    if stay.kind == StayKind.BOOKING:
        owed = booking_overstay_cents
    elif stay.kind == StayKind.PERMIT:
        owed = 0
    else:
        owed = _drive_up_owed(session, stay, gate_pass, exited.at)
    stay.amount_due_cents = stay.paid_cents + owed
    log_event(
        session,
        "stay.closed",
        now,
        lot_id=stay.lot_id,
        stay=stay.session_id,
        owed_cents=owed,
        reason=gate_pass.reason,
        time_flag=exited.flag,
    )
    if owed and stay.booking_id:
        _notify_overstay(session, stay, owed, now)
    if not owed:
        void_unpaid_stay_payments(session, stay, now)
    return owed


def _drive_up_owed(session: Session, stay: Stay, gate_pass: GatePass, exited_at: datetime) -> int:
    """The cloud's price on the stay's tariff; for ``bill_later`` the gate's journaled amount
    (what the driver was shown) when it is lower (a difference is logged): never more than the
    cloud's own price."""
    terms = stay_terms(session, stay)
    window = None
    if stay.paid_through is not None:
        window = stay.paid_through + timedelta(minutes=terms.policy.paid_exit_minutes)
    until = stay.paid_through if window and exited_at <= window else exited_at
    assert until is not None
    try:
        ours = max(0, gross_price(terms, until) - stay.paid_cents)
    except ValueError as exc:
        log.warning("stay %s: the tariff will not price it (%s)", stay.session_id, exc)
        stay.time_flag = stay.time_flag or "unpriceable"
        return gate_pass.amount_owed_cents
    if gate_pass.reason == BILL_LATER and gate_pass.amount_owed_cents != ours:
        log_event(
            session,
            "stay.price_differs",
            exited_at,
            lot_id=stay.lot_id,
            stay=stay.session_id,
            gate_cents=gate_pass.amount_owed_cents,
            cloud_cents=ours,
        )
        # the driver was told the gate's amount; a lot device never bills more than the cloud's
        # own price of the stay (a wrong or tampered gate cannot overcharge), nor more than it said
        return min(gate_pass.amount_owed_cents, ours)
    return ours


def note_payment_due(session: Session, stay: Stay, gate_pass: GatePass, *, now: datetime) -> int:
    """A denied exit for ``payment_due``: the stay stays open and owes (priced when paid); a
    booking's stay gets the overstay email once. Returns the amount the gate asked for."""
    log_event(
        session,
        "stay.payment_due",
        now,
        lot_id=stay.lot_id,
        stay=stay.session_id,
        amount_cents=gate_pass.amount_owed_cents,
    )
    if stay.booking_id and gate_pass.amount_owed_cents:
        _notify_overstay(session, stay, gate_pass.amount_owed_cents, now)
    return gate_pass.amount_owed_cents


def _notify_overstay(session: Session, stay: Stay, amount_cents: int, now: datetime) -> None:
    if stay.overstay_notified_at is not None or stay.booking_id is None:
        return
    booking = session.get(Booking, stay.booking_id)
    if booking is None:
        return
    stay.overstay_notified_at = now
    notify(session, booking, "overstay", amount_cents=amount_cents)
