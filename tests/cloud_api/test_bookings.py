"""Booking lifecycle on a migrated SQLite database (service layer, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api import bookings as svc
from cloud_api.errors import Conflict, InvalidRequest
from cloud_api.models import Booking, Lot, LotChange, OutboxMessage, Payment, Role
from cloud_api.seed import add_lot, add_user
from cloud_api.visits import record_arrival, record_exit, record_payment_received
from tests.support.payments import pay_booking

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def lot(session: Session) -> Lot:
    lot = add_lot(session, "Test", {"car": 2, "ev": 1}, early_exit_policy="pro_rata")
    session.commit()
    return lot


@pytest.fixture
def customer(session: Session):  # type: ignore[no-untyped-def]
    seeded = add_user(session, "c@example.test", Role.CUSTOMER)
    session.commit()
    return seeded.user


def book(session: Session, lot: Lot, user, start=NOW + H, end=NOW + 3 * H, **kw) -> Booking:  # type: ignore[no-untyped-def]
    req = svc.BookingRequest(
        lot.id, kw.pop("plate", "ab-123 c"), kw.pop("vt", "car"), start, end, **kw
    )
    booking = svc.create_booking(session, user, req, NOW)
    session.commit()
    return booking


def changes(session: Session, lot: Lot) -> list[LotChange]:
    return list(
        session.scalars(select(LotChange).where(LotChange.lot_id == lot.id).order_by(LotChange.seq))
    )


def outbox_kinds(session: Session) -> list[str]:
    return [m.kind for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


def test_create_pending_with_hold_price_and_change(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    b = book(session, lot, customer)
    assert b.id.startswith("bk_") and len(b.id) == 19
    assert b.plate == "AB123C"
    assert b.status == "pending"
    assert b.hold_expires_at == NOW + timedelta(minutes=15)
    assert b.price_cents == 500
    [change] = changes(session, lot)
    assert change.seq == 1 and change.payload["id"] == b.id and change.payload["space_label"]
    assert outbox_kinds(session) == ["payment.create"]
    assert session.scalars(select(Payment)).one().idempotency_key == f"{b.id}:charge:initial"


def test_spaces_fill_then_conflict(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a, b = book(session, lot, customer), book(session, lot, customer)
    assert a.space_id != b.space_id
    with pytest.raises(Conflict) as err:
        book(session, lot, customer)
    assert err.value.reason == "no_space_free"
    book(session, lot, customer, start=NOW + 3 * H, end=NOW + 4 * H)  # adjacent window is fine


def test_chosen_space_overlap(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a = book(session, lot, customer)
    with pytest.raises(Conflict) as err:
        book(session, lot, customer, start=NOW + 2 * H, end=NOW + 5 * H, space_id=a.space_id)
    assert err.value.reason == "space_overlaps"


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (NOW + H, NOW + H, "end_before_start"),
        (NOW - H, NOW + H, "start_in_past"),
        (NOW + H, NOW + 40 * 24 * H, "too_long"),
    ],
)
def test_bad_windows(session: Session, lot: Lot, customer, start, end, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest) as err:
        book(session, lot, customer, start=start, end=end)
    assert err.value.reason == reason


def test_expired_hold_is_free_and_expire_holds(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a = book(session, lot, customer, vt="ev")
    later = NOW + timedelta(minutes=16)
    req = svc.BookingRequest(lot.id, "XY1", "ev", NOW + H, NOW + 2 * H)
    b = svc.create_booking(session, customer, req, later)  # the lapsed hold does not block
    session.commit()
    session.refresh(a)
    assert a.status == "expired" and b.space_id == a.space_id
    assert svc.expire_holds(session, NOW + timedelta(hours=5)) == [b.id]


def test_confirm_release_are_idempotent(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a, b = book(session, lot, customer), book(session, lot, customer)
    svc.confirm_payment(session, a.id, now=NOW)
    svc.confirm_payment(session, a.id, now=NOW)
    svc.release_booking(session, b.id, reason="card_declined", now=NOW)
    svc.release_booking(session, b.id, reason="card_declined", now=NOW)
    session.commit()
    assert (a.status, a.hold_expires_at, b.status) == ("confirmed", None, "cancelled")
    assert [c.kind for c in changes(session, lot)] == [
        "created",
        "created",
        "confirmed",
        "access_keys",  # the lot's first booking code (in the confirmation) made its key
        "released",
    ]
    assert outbox_kinds(session).count("notify.email") == 2
    with pytest.raises(Conflict):
        svc.confirm_payment(session, b.id, now=NOW)


def test_cancel_confirmed_refunds(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a = book(session, lot, customer)
    pay_booking(session, a.id, NOW)
    svc.cancel_booking(session, a, now=NOW)
    session.commit()
    assert a.status == "cancelled" and a.refunded_cents == 500
    assert "payment.refund" in outbox_kinds(session)
    with pytest.raises(Conflict):
        svc.cancel_booking(session, a, now=NOW)


def test_extend_and_its_conflict(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a = book(session, lot, customer, vt="ev")
    pay_booking(session, a.id, NOW)
    svc.extend_booking(session, a, NOW + 4 * H, now=NOW)
    session.commit()
    assert (a.price_cents, a.amount_owed_cents) == (900, 300)
    b = book(session, lot, customer, vt="ev", start=NOW + 4 * H, end=NOW + 5 * H)
    with pytest.raises(Conflict):
        svc.extend_booking(session, a, NOW + 6 * H, now=NOW)
    session.rollback()
    assert a.end_time == NOW + 4 * H and b.status == "pending"
    record_payment_received(session, a.id, 300, now=NOW)
    assert a.amount_owed_cents == 0


def test_change_plate(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a = book(session, lot, customer)
    svc.change_plate(session, a, "rent 42", now=NOW)
    assert changes(session, lot)[-1].payload["plate"] == "RENT42"
    with pytest.raises(InvalidRequest):
        svc.change_plate(session, a, "!", now=NOW)


def test_no_plate_change_while_the_car_is_inside(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    """One booking, two cars: with the plate changed while the first car is parked, the gate
    would admit a second car under the new plate. Refused; nothing is pushed to the lot."""
    a = book(session, lot, customer)
    pay_booking(session, a.id, NOW)
    record_arrival(session, a, at=NOW + H, now=NOW + H)
    pushed = len(changes(session, lot))
    with pytest.raises(Conflict) as refused:
        svc.change_plate(session, a, "SECOND1", now=NOW + H)
    assert refused.value.reason == "car_inside"
    assert a.plate != "SECOND1" and len(changes(session, lot)) == pushed


def test_early_exit_credit_and_overstay(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a = book(session, lot, customer)  # 2 h, 500
    b = book(session, lot, customer)
    for x in (a, b):
        pay_booking(session, x.id, NOW)
        record_arrival(session, x, at=NOW + H, now=NOW + H)
    early = record_exit(session, a, at=NOW + 2 * H, now=NOW + 2 * H)
    late = record_exit(session, b, at=NOW + 5 * H, now=NOW + 5 * H)
    session.commit()
    assert (early.credit_cents, early.overstay_cents) == (250, 0)
    assert (late.credit_cents, late.overstay_cents) == (0, 500)
    assert b.amount_owed_cents == 500 and b.status == "completed"
    assert changes(session, lot)[-1].payload["amount_owed_cents"] == 500


def test_overlap_trigger_is_a_backstop(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    a = book(session, lot, customer)
    session.add(
        Booking(
            id="bk_x",
            user_id=customer.id,
            lot_id=lot.id,
            space_id=a.space_id,
            plate="Q1",
            vehicle_type="car",
            start_time=NOW + 2 * H,
            end_time=NOW + 6 * H,
            status="confirmed",
            price_cents=0,
            currency="EUR",
        )
    )
    with pytest.raises(IntegrityError, match="booking_overlap"):
        session.commit()


def test_lot_change_seq_is_gap_free(session: Session, lot: Lot, customer) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):
        svc.cancel_booking(session, book(session, lot, customer), now=NOW)
        session.commit()
    assert [c.seq for c in changes(session, lot)] == [1, 2, 3, 4]
