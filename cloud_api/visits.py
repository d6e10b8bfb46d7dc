"""Arrival, exit and settlement of a booking: what the gate reports and what is owed.

Exit applies the lot's policy (tariff, overstay grace) through ``cloud_api.pricing``: leaving
early earns a credit refunded through the provider (outbox ``payment.refund``), leaving after
end + grace adds an overstay charge to ``amount_owed_cents`` (outbox ``payment.create``) that
the exit gate sees until it is paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.bookings import get_booking, notify, request_payment, void_unpaid
from cloud_api.changes import log_event, record_change
from cloud_api.errors import Conflict
from cloud_api.models import Booking, BookingStatus, Lot, PaymentKind
from cloud_api.payments.refunds import refund_booking
from cloud_api.policies import current_policy, policy_at
from cloud_api.pricing import early_exit_credit, overstay_charge
from cloud_api.reported_times import DEFAULT_CLOCK_SKEW, bound_reported_time
from parkgate_protocol import LotPolicy

__all__ = [
    "ExitOutcome",
    "StayPaid",
    "find_for_plate",
    "record_arrival",
    "record_exit",
    "record_payment_received",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExitOutcome:
    booking: Booking
    credit_cents: int
    overstay_cents: int
    time_flag: str | None = None  # why the recorded exit time is not the reported one


@dataclass(frozen=True, slots=True)
class StayPaid:
    """What pay by plate captured for a booking's stay before its exit was recorded."""

    cents: int
    through: datetime | None


def find_for_plate(session: Session, lot_id: int, plate: str, now: datetime) -> Booking | None:
    """The booking a gate should apply to this plate now: inside first, else nearest window."""
    rows = session.scalars(
        select(Booking)
        .where(
            Booking.lot_id == lot_id,
            Booking.plate == plate,
            Booking.status.in_(
                [BookingStatus.PENDING.value, BookingStatus.CONFIRMED.value, "completed"]
            ),
        )
        .order_by(Booking.start_time)
    ).all()
    inside = [b for b in rows if b.arrived_at is not None and b.exited_at is None]
    if inside:
        return inside[0]
    owing = [b for b in rows if b.amount_owed_cents > 0]
    if owing:
        return owing[0]
    upcoming = [b for b in rows if b.status != "completed" and b.end_time >= now]
    return min(upcoming, key=lambda b: abs((b.start_time - now).total_seconds()), default=None)


def record_arrival(
    session: Session,
    booking: Booking,
    *,
    at: datetime,
    now: datetime,
    skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> Booking:
    """The booking's car came in at ``at``, bounded by the cloud's ``now`` + ``skew`` (a later
    report is recorded at ``now`` and flagged in the event log)."""
    if booking.status != BookingStatus.CONFIRMED.value:
        raise Conflict("not_confirmed", f"booking is {booking.status}")
    if booking.arrived_at is None:
        reported = bound_reported_time(at, not_before=None, now=now, skew=skew)
        booking.arrived_at = reported.at
        booking.updated_at = now
        record_change(session, booking, "arrived", now)
        log_event(
            session,
            "visit.arrived",
            now,
            booking=booking,
            at=reported.at.isoformat(),
            reported_at=at.isoformat(),
            time_flag=reported.flag,
        )
    return booking


def record_exit(
    session: Session,
    booking: Booking,
    *,
    at: datetime,
    now: datetime,
    skew: timedelta = DEFAULT_CLOCK_SKEW,
    stay_paid: StayPaid | None = None,
) -> ExitOutcome:
    """Close the visit: credit for early exit by the lot's policy, or owe the overstay.

    The exit time is bounded (:mod:`cloud_api.reported_times`): never before the arrival (or,
    never arrived, the booking's creation), never after ``now`` + ``skew``. A moved (flagged)
    time earns no credit, and a booking that never arrived earns none unless the policy's
    ``credit_unused_booking`` says so. ``stay_paid``: what pay by plate already took for this
    stay's overstay, so the exit does not bill it again."""
    if booking.exited_at is not None:
        return ExitOutcome(booking, 0, 0)
    if booking.status != BookingStatus.CONFIRMED.value:
        raise Conflict("not_confirmed", f"booking is {booking.status}")
    lot = session.get(Lot, booking.lot_id)
    assert lot is not None
    # the unused part is worth what it was sold at (the booking's policy); an overstay costs
    # what the lot charges now, as the gate prices it
    sold = policy_at(session, booking.lot_id, booking.policy_version)
    policy = current_policy(session, booking.lot_id)
    not_before = booking.arrived_at or booking.created_at
    reported = bound_reported_time(at, not_before=not_before, now=now, skew=skew)
    credit = 0
    earns = booking.arrived_at is not None or policy.credit_unused_booking
    if reported.flag is None and earns:
        credit = early_exit_credit(
            paid_cents=booking.price_cents - booking.refunded_cents,
            start=booking.start_time,
            end=booking.end_time,
            exited_at=reported.at,
            tariff=sold.tariff,
            vehicle_type=booking.vehicle_type,
            policy=lot.early_exit_policy,
            fee_cents=lot.early_exit_fee_cents,
        )
    overstay = _overstay_owed(booking, reported.at, policy, stay_paid)
    booking.exited_at = reported.at
    booking.status = BookingStatus.COMPLETED.value
    booking.updated_at = now
    if credit:  # given back from what was captured, never more (an extension may be unpaid)
        granted = refund_booking(session, booking.id, credit, "early-exit")
        booking.refunded_cents += granted
        credit = granted + _credit_against_owed(session, booking, credit - granted, now)
        if granted:
            notify(session, booking, "refund", amount_cents=granted)
    if overstay:
        booking.amount_owed_cents += overstay
        request_payment(session, booking, overstay, PaymentKind.OVERSTAY, "overstay")
    record_change(session, booking, "exited", now)
    log_event(
        session,
        "visit.exited",
        now,
        booking=booking,
        credit_cents=credit,
        overstay_cents=overstay,
        reported_at=at.isoformat(),
        time_flag=reported.flag,
    )
    return ExitOutcome(booking, credit, overstay, reported.flag)


def _credit_against_owed(session: Session, booking: Booking, cents: int, now: datetime) -> int:
    """The part of an early-exit credit beyond what was captured (an extension not paid yet)
    is taken off what the booking owes, never given as money: the customer pays what the stay
    cost, not the unpaid extension in full. The unpaid payments are replaced by one for what
    is left. Returns the amount taken off."""
    taken = min(cents, booking.amount_owed_cents)
    if taken <= 0:
        return 0
    booking.amount_owed_cents -= taken
    void_unpaid(session, booking.id, now)
    if booking.amount_owed_cents:
        tag = f"after-credit-{now.strftime('%Y%m%dT%H%M%S')}"
        request_payment(session, booking, booking.amount_owed_cents, PaymentKind.EXTENSION, tag)
    log_event(session, "visit.credit_against_owed", now, booking=booking, credit_cents=taken)
    return taken


def _overstay_owed(
    booking: Booking, exited_at: datetime, policy: LotPolicy, paid: StayPaid | None
) -> int:
    """The overstay still owed at ``exited_at``: priced through the moment pay by plate covered
    when the car left within the policy's ``paid_exit_minutes`` of it, less what was paid."""
    priced_until = exited_at
    if paid is not None and paid.through is not None:
        window = paid.through + timedelta(minutes=policy.paid_exit_minutes)
        if exited_at <= window:
            priced_until = min(exited_at, paid.through)
    overstay = overstay_charge(
        end=booking.end_time,
        exited_at=priced_until,
        grace_minutes=policy.overstay_grace_minutes,
        tariff=policy.tariff,
        vehicle_type=booking.vehicle_type,
    )
    return max(0, overstay - (paid.cents if paid else 0))


def record_payment_received(
    session: Session, booking_id: str, amount_cents: int, *, now: datetime
) -> Booking:
    """A payment for money owed (extension, overstay) arrived: reduce what the exit must see.
    Once nothing is owed, the booking's other unpaid payments (an overstay's, when pay by plate
    settled it) can no longer be paid: a customer cannot pay the same debt twice."""
    booking = get_booking(session, booking_id, for_update=True)
    if booking.amount_owed_cents:
        booking.amount_owed_cents = max(0, booking.amount_owed_cents - amount_cents)
        if not booking.amount_owed_cents:
            void_unpaid(session, booking.id, now)
        booking.updated_at = now
        record_change(session, booking, "paid", now)
        log_event(session, "booking.paid", now, booking=booking, amount_cents=amount_cents)
    return booking
