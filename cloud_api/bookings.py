"""Booking lifecycle: create, confirm, release, cancel, extend, change plate, expire holds.

Every function takes the session and ``now`` and leaves committing to the caller, so a change, its
``lot_changes`` row, its event log entry and its outbox messages share one transaction. Arrival,
exit and payment settlement live in ``cloud_api.visits``.

Double booking is refused three ways: the check below, then the database (PostgreSQL ``EXCLUDE``
constraint; SQLite overlap trigger, under ``BEGIN IMMEDIATE``), whose ``IntegrityError`` becomes
``Conflict``.
"""

from __future__ import annotations

import base64
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api import outbox
from cloud_api.access_codes import booking_access_code
from cloud_api.availability import blocking, free_space_rows, overlapping
from cloud_api.changes import log_event, record_change
from cloud_api.errors import Conflict, InvalidRequest, NotFound, TooMany
from cloud_api.models import (
    Booking,
    BookingStatus,
    Lot,
    Payment,
    PaymentKind,
    Space,
    Stay,
    StayStatus,
    User,
)
from cloud_api.payments.refunds import refund_booking
from cloud_api.plates import normalise_plate
from cloud_api.policies import current_policy
from cloud_api.pricing import bookable
from parkgate_protocol import LotPolicy, price_stay

__all__ = [
    "MAX_STAY",
    "BookingRequest",
    "cancel_booking",
    "change_plate",
    "check_unpaid_holds",
    "confirm_payment",
    "create_booking",
    "expire_holds",
    "extend_booking",
    "get_booking",
    "new_booking_id",
    "normalise_plate",
    "notify",
    "price_booking",
    "release_booking",
    "request_payment",
    "validate_window",
    "void_unpaid",
]

log = logging.getLogger(__name__)

MAX_STAY = timedelta(days=31)
START_SLACK = timedelta(minutes=1)  # clock skew allowed for "start now"
ACTIVE = (BookingStatus.PENDING.value, BookingStatus.CONFIRMED.value)


def new_booking_id() -> str:
    return "bk_" + base64.b32encode(secrets.token_bytes(10)).decode().lower()


@dataclass(frozen=True, slots=True)
class BookingRequest:
    lot_id: int
    plate: str
    vehicle_type: str
    start: datetime
    end: datetime
    space_id: int | None = None


def get_booking(session: Session, booking_id: str, *, for_update: bool = False) -> Booking:
    stmt = select(Booking).where(Booking.id == booking_id)
    if for_update:
        stmt = stmt.with_for_update()
    booking = session.scalars(stmt).first()
    if booking is None:
        raise NotFound("booking_not_found", f"booking {booking_id} not found")
    return booking


def price_booking(policy: LotPolicy, vehicle_type: str, start: datetime, end: datetime) -> int:
    """A booking's price on the lot's policy; ``InvalidRequest("no_price")`` for a vehicle type
    the tariff does not list."""
    bookable(policy.tariff, vehicle_type)
    return price_stay(policy.tariff, start, end, vehicle_type)


def validate_window(start: datetime, end: datetime, now: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("naive_time", "times need a timezone offset")
    if end <= start:
        raise InvalidRequest("end_before_start", "end_time must be after start_time")
    if start < now - START_SLACK:
        raise InvalidRequest("start_in_past", "start_time is in the past")
    if end - start > MAX_STAY:
        raise InvalidRequest("too_long", f"a booking lasts at most {MAX_STAY.days} days")


def check_unpaid_holds(held: int, limit: int) -> None:
    """``TooMany`` when a customer already holds ``limit`` unpaid bookings at the lot: holds
    block spaces for free, so their number is capped (``LotPolicy.max_unpaid_holds``)."""
    if held >= limit:
        raise TooMany(
            "too_many_unpaid_holds",
            f"{held} unpaid bookings at this lot already (at most {limit}): pay or cancel one",
        )


def _unpaid_holds(session: Session, user_id: int, lot_id: int, now: datetime) -> int:
    """The customer's live holds at the lot, counted under their ``users`` row lock (held to
    the commit; ``FOR NO KEY UPDATE``, before the lot's row, as ``parkgate_create_booking``
    takes them): a concurrent booking of theirs waits and then counts this one's hold."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    return (
        session.scalar(
            select(func.count())
            .select_from(Booking)
            .where(
                Booking.user_id == user_id,
                Booking.lot_id == lot_id,
                Booking.status == BookingStatus.PENDING.value,
                Booking.hold_expires_at > now,
            )
        )
        or 0
    )


def _candidates(session: Session, lot: Lot, req: BookingRequest, now: datetime) -> list[int]:
    """Ids of the spaces to try, in order (plain rows: no ORM objects on the hot path)."""
    if req.space_id is None:
        spaces = free_space_rows(session, lot.id, req.start, req.end, now, req.vehicle_type)
        if not spaces:
            raise Conflict("no_space_free", "no compatible space is free for that window")
        return [space.id for space in spaces]
    space = session.get(Space, req.space_id)
    if space is None or space.lot_id != lot.id or not space.active:
        raise InvalidRequest("unknown_space", f"space {req.space_id} is not in lot {lot.id}")
    if space.vehicle_type != req.vehicle_type:
        raise InvalidRequest("space_incompatible", f"space is for {space.vehicle_type}")
    if _space_taken(session, space.id, req.start, req.end, now):
        raise Conflict("space_overlaps", "the chosen space is booked for an overlapping window")
    return [space.id]


def _space_taken(
    session: Session,
    space_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude_id: str | None = None,
) -> bool:
    cond = [Booking.space_id == space_id, overlapping(start, end), blocking(now)]
    if exclude_id is not None:
        cond.append(Booking.id != exclude_id)
    return bool(session.scalar(select(exists().where(*cond))))


def _expire_stale_holds(
    session: Session, space_id: int, start: datetime, end: datetime, now: datetime
) -> None:
    """Expire lapsed holds overlapping the window so the database constraint lets us in."""
    stale = session.scalars(
        select(Booking).where(
            Booking.space_id == space_id,
            Booking.status == BookingStatus.PENDING.value,
            Booking.hold_expires_at <= now,
            overlapping(start, end),
        )
    ).all()
    for booking in stale:
        _expire(session, booking, now)


def create_booking(session: Session, user: User, req: BookingRequest, now: datetime) -> Booking:
    """Reserve a compatible free space (or the chosen one); ``Conflict`` when none is free."""
    validate_window(req.start, req.end, now)
    plate = normalise_plate(req.plate)
    lot = session.get(Lot, req.lot_id)
    if lot is None:
        raise InvalidRequest("unknown_lot", f"parking lot {req.lot_id} does not exist")
    policy = current_policy(session, lot.id)
    price = price_booking(policy, req.vehicle_type, req.start, req.end)
    if price:
        check_unpaid_holds(_unpaid_holds(session, user.id, lot.id, now), policy.max_unpaid_holds)
    for space_id in _candidates(session, lot, req, now):
        booking = _try_insert(session, lot, space_id, user, req, plate, (price, policy), now)
        if booking is not None:
            _after_create(session, booking, user, now)
            return booking
    reason = "space_overlaps" if req.space_id is not None else "no_space_free"
    raise Conflict(reason, "no compatible space is free for that window")


def _try_insert(
    session: Session,
    lot: Lot,
    space_id: int,
    user: User,
    req: BookingRequest,
    plate: str,
    priced: tuple[int, LotPolicy],
    now: datetime,
) -> Booking | None:
    price, policy = priced
    booking = Booking(
        id=new_booking_id(),
        user_id=user.id,
        lot_id=lot.id,
        space_id=space_id,
        plate=plate,
        vehicle_type=req.vehicle_type,
        start_time=req.start,
        end_time=req.end,
        status=BookingStatus.PENDING.value if price else BookingStatus.CONFIRMED.value,
        hold_expires_at=now + timedelta(minutes=lot.hold_minutes) if price else None,
        price_cents=price,
        currency=lot.currency,
        amount_owed_cents=0,
        created_at=now,
        updated_at=now,
        policy_version=policy.version,
    )
    try:
        with session.begin_nested():
            _expire_stale_holds(session, space_id, req.start, req.end, now)
            session.add(booking)
            session.flush()
    except IntegrityError:
        log.debug("space %s taken concurrently for %s", space_id, plate)
        return None
    return booking


def _after_create(session: Session, booking: Booking, user: User, now: datetime) -> None:
    """The change feed row comes last: its ``UPDATE lots`` row lock serialises a lot's writers
    until commit, so nothing else should run while it is held."""
    log_event(session, "booking.created", now, booking=booking, price_cents=booking.price_cents)
    if booking.price_cents:
        request_payment(session, booking, booking.price_cents, PaymentKind.CHARGE, "initial")
    record_change(session, booking, "created", now)


def request_payment(
    session: Session, booking: Booking, amount: int, kind: PaymentKind, tag: str
) -> Payment:
    """A payment row awaiting the provider, and the outbox message that asks for it."""
    payment = Payment(
        booking_id=booking.id,
        amount_cents=amount,
        currency=booking.currency,
        status="requires_payment" if kind != PaymentKind.REFUND else "pending",
        provider="pending",
        kind=kind.value,
        idempotency_key=f"{booking.id}:{kind.value}:{tag}",
    )
    session.add(payment)
    session.flush()
    message_kind = "payment.refund" if kind == PaymentKind.REFUND else "payment.create"
    outbox.enqueue(
        session,
        message_kind,
        {
            "payment_id": payment.id,
            "booking_id": booking.id,
            "amount_cents": amount,
            "currency": booking.currency,
            "kind": kind.value,
            "idempotency_key": payment.idempotency_key,
        },
    )
    return payment


def notify(session: Session, booking: Booking, template: str, **extra: object) -> None:
    user = session.get(User, booking.user_id)
    if user is None:
        return
    payload: dict[str, object] = {
        "template": template,
        "to": user.email,
        "name": user.name,
        "booking_id": booking.id,
        "plate": booking.plate,
        "starts_at": booking.start_time.isoformat(),
        "ends_at": booking.end_time.isoformat(),
        "currency": booking.currency,
        **extra,
    }
    outbox.enqueue(session, "notify.email", payload)


def confirm_payment(session: Session, booking_id: str, *, now: datetime) -> Booking:
    """Payment succeeded: pending → confirmed (idempotent). ``Conflict`` if it was released."""
    booking = get_booking(session, booking_id, for_update=True)
    if booking.status == BookingStatus.CONFIRMED.value:
        return booking
    if booking.status != BookingStatus.PENDING.value:
        raise Conflict("not_pending", f"booking {booking_id} is {booking.status}; refund it")
    booking.status = BookingStatus.CONFIRMED.value
    booking.hold_expires_at = None
    booking.updated_at = now
    record_change(session, booking, "confirmed", now)
    log_event(session, "booking.confirmed", now, booking=booking)
    code = booking_access_code(session, booking, now)
    notify(
        session, booking, "payment_confirmed", amount_cents=booking.price_cents, access_code=code
    )
    return booking


def release_booking(session: Session, booking_id: str, *, reason: str, now: datetime) -> Booking:
    """Payment failed: a pending booking is cancelled and its space freed; otherwise a no-op."""
    booking = get_booking(session, booking_id, for_update=True)
    if booking.status != BookingStatus.PENDING.value:
        log.info("release of %s ignored: status %s", booking_id, booking.status)
        return booking
    booking.status = BookingStatus.CANCELLED.value
    booking.updated_at = now
    void_unpaid(session, booking.id, now)
    record_change(session, booking, "released", now)
    log_event(session, "booking.released", now, booking=booking, reason=reason)
    notify(session, booking, "payment_failed", reason=reason)
    return booking


def cancel_booking(session: Session, booking: Booking, *, now: datetime) -> Booking:
    """Customer cancel before the start; a confirmed booking is refunded in full."""
    if booking.status not in ACTIVE:
        raise Conflict("not_active", f"booking is {booking.status}")
    if booking.start_time <= now or booking.arrived_at is not None:
        raise Conflict("already_started", "a started booking ends by exiting")
    was_paid = booking.status == BookingStatus.CONFIRMED.value
    booking.status = BookingStatus.CANCELLED.value
    booking.updated_at = now
    void_unpaid(session, booking.id, now)
    record_change(session, booking, "cancelled", now)
    log_event(session, "booking.cancelled", now, booking=booking)
    if was_paid and booking.price_cents:
        # what was paid, never more (an extension may be unpaid)
        granted = refund_booking(session, booking.id, booking.price_cents, "cancel")
        booking.refunded_cents += granted
        booking.amount_owed_cents = 0
        if granted:
            notify(session, booking, "refund", amount_cents=granted)
    return booking


def _refuse_after_plate_payment(session: Session, booking_id: str) -> None:
    """A booking whose car is inside and paid its overstay by plate cannot be extended: the
    extension would sell again the time pay by plate already paid for, and the exit, priced on
    the new end, would never give that money back. The car leaves within the paid window, or
    pays by plate again for the time after it."""
    paid = session.scalar(
        select(
            exists().where(
                Stay.booking_id == booking_id,
                Stay.status == StayStatus.OPEN.value,
                Stay.paid_cents > 0,
            )
        )
    )
    if paid:
        raise Conflict(
            "paid_by_plate", "the overstay was paid by plate: leave, or pay by plate again"
        )


def extend_booking(
    session: Session, booking: Booking, new_end: datetime, *, now: datetime
) -> Booking:
    """Move the end later on the same space; the extra time's price is a new ``extension``
    payment, owed (the exit holds the car) until it is paid.

    Refused (409 ``payment_pending``) while the booking or an earlier extension is unpaid: a
    pending booking's first payment would otherwise confirm the longer stay for the price of
    the shorter one. Refused (409 ``paid_by_plate``) once the car inside paid its overstay by
    plate."""
    if booking.status not in ACTIVE:
        raise Conflict("not_active", f"booking is {booking.status}")
    _refuse_while_unpaid(session, booking)
    _refuse_after_plate_payment(session, booking.id)
    if new_end <= booking.end_time:
        raise InvalidRequest("not_later", "new end_time must be after the current end")
    if new_end - booking.start_time > MAX_STAY:
        raise InvalidRequest("too_long", f"a booking lasts at most {MAX_STAY.days} days")
    if _space_taken(session, booking.space_id, booking.end_time, new_end, now, booking.id):
        raise Conflict("space_overlaps", "the space is booked right after this booking")
    # The booked part keeps the price it was sold at; the extra time costs what the current
    # tariff asks for it as a continuation of this stay (never less than nothing, whatever the
    # tariff did since), so a tariff change can neither make an extension free nor re-price
    # what was already bought.
    policy = current_policy(session, booking.lot_id)
    vehicle, start = booking.vehicle_type, booking.start_time
    longer = price_booking(policy, vehicle, start, new_end)
    delta = max(0, longer - price_booking(policy, vehicle, start, booking.end_time))
    new_price = booking.price_cents + delta
    try:
        with session.begin_nested():
            _expire_stale_holds(session, booking.space_id, booking.end_time, new_end, now)
            booking.end_time = new_end
            booking.price_cents = new_price  # policy_version stays: the stay's own tariff
            booking.updated_at = now
            session.flush()
    except IntegrityError:
        session.refresh(booking)
        raise Conflict("space_overlaps", "the space is booked right after this booking") from None
    if delta > 0:
        booking.amount_owed_cents += delta
        tag = f"extend-{new_end.strftime('%Y%m%dT%H%M%S')}"
        request_payment(session, booking, delta, PaymentKind.EXTENSION, tag)
    record_change(session, booking, "extended", now)
    log_event(session, "booking.extended", now, booking=booking, delta_cents=delta)
    return booking


def _refuse_while_unpaid(session: Session, booking: Booking) -> None:
    if booking.status == BookingStatus.PENDING.value:
        raise Conflict("payment_pending", "pay for the booking before extending it")
    unpaid = session.scalar(
        select(func.count())
        .select_from(Payment)
        .where(
            Payment.booking_id == booking.id,
            Payment.kind != PaymentKind.REFUND.value,
            Payment.status.in_(("requires_payment", "failed")),
        )
    )
    if unpaid:
        raise Conflict("payment_pending", "pay for the last extension before extending again")


def change_plate(session: Session, booking: Booking, plate: str, *, now: datetime) -> Booking:
    """A new plate for the booking (a rental, a second car), before the car arrives or after it
    left. Refused (409 ``car_inside``) while its car is inside: the gate would let a second car
    in on the same booking under the new plate while the first is still parked."""
    if booking.status not in ACTIVE:
        raise Conflict("not_active", f"booking is {booking.status}")
    if booking.arrived_at is not None and booking.exited_at is None:
        raise Conflict("car_inside", "the booked car is inside: change the plate once it has left")
    old, booking.plate = booking.plate, normalise_plate(plate)
    booking.updated_at = now
    record_change(session, booking, "plate_changed", now)
    log_event(session, "booking.plate_changed", now, booking=booking, old_plate=old)
    return booking


def void_unpaid(session: Session, booking_id: str, now: datetime) -> None:
    """The booking's unpaid payments can no longer be paid (their pay page says so); money
    that still arrives through an open checkout is refunded by the webhook."""
    unpaid = session.scalars(
        select(Payment).where(
            Payment.booking_id == booking_id,
            Payment.kind != PaymentKind.REFUND.value,
            Payment.status.in_(("requires_payment", "failed")),
        )
    ).all()
    for payment in unpaid:
        payment.status = "cancelled"
        payment.updated_at = now


def _expire(session: Session, booking: Booking, now: datetime) -> None:
    booking.status = BookingStatus.EXPIRED.value
    booking.updated_at = now
    void_unpaid(session, booking.id, now)
    record_change(session, booking, "expired", now)
    log_event(session, "booking.expired", now, booking=booking)


def expire_holds(session: Session, now: datetime, limit: int = 500) -> list[str]:
    """Expire pending bookings whose hold has lapsed; returns their ids (caller commits)."""
    stale = session.scalars(
        select(Booking)
        .where(Booking.status == BookingStatus.PENDING.value, Booking.hold_expires_at <= now)
        .order_by(Booking.hold_expires_at)
        .limit(limit)
    ).all()
    for booking in stale:
        _expire(session, booking, now)
    return [b.id for b in stale]
