"""Pay by plate: the stays a plate owes for at a lot, a payment for one, and applying a
captured payment (the ``stay_paid`` push to the lot).

A stay payment is a ``payments`` row of kind ``stay`` (``stay_id`` set, no booking) priced NOW
through ``paid_through``; the outbox asks the provider for it (``payment.create``) like any
other charge, and the customer pays on the hosted page ``/pay/{payment_id}``. When it is captured
:func:`record_stay_payment` applies what the stay still owed through ``paid_through``; a capture
beyond that (the stay paid twice) is refunded at once, automatically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cloud_api import outbox
from cloud_api.changes import append_change, log_event
from cloud_api.errors import Conflict, NotFound
from cloud_api.models import Payment, PaymentKind, Stay, StayKind, StayStatus
from cloud_api.payments.refunds import refund_payment
from cloud_api.stays._ledger import Owed, owed_now, stay_terms, void_unpaid_stay_payments
from cloud_api.stays._owed import outstanding
from cloud_api.visits import record_payment_received
from parkgate_protocol import ChangeKind, StayPayment

__all__ = [
    "OwingStay",
    "get_stay",
    "owing_stays",
    "paid_stays_inside",
    "push_stay_paid",
    "record_stay_payment",
    "start_stay_payment",
]

log = logging.getLogger(__name__)

REUSE_PENDING = timedelta(minutes=10)  # a second "Pay" within this reuses the unpaid payment


@dataclass(frozen=True, slots=True)
class OwingStay:
    stay: Stay
    owed: Owed


def owing_stays(session: Session, lot_id: int, plate: str, now: datetime) -> list[OwingStay]:
    """The lot's stays of ``plate`` (normalised) that owe now: open ones (priced to now) and
    closed ones left owing. Permit stays never owe."""
    rows = session.scalars(
        select(Stay)
        .where(
            Stay.lot_id == lot_id,
            Stay.plate == plate,
            Stay.kind != StayKind.PERMIT.value,
            or_(Stay.status == StayStatus.OPEN.value, Stay.amount_due_cents > Stay.paid_cents),
        )
        .order_by(Stay.entered_at)
    ).all()
    found = [OwingStay(stay, owed_now(session, stay, now)) for stay in rows]
    return [item for item in found if item.owed.cents > 0]


def get_stay(session: Session, session_id: str, *, for_update: bool = False) -> Stay:
    """The stay of pay-by-plate id ``session_id``; ``for_update`` locks its row and reloads it
    (an object the session loaded before the lock may be stale)."""
    stmt = select(Stay).where(Stay.session_id == session_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    stay = session.scalars(stmt).first()
    if stay is None:
        raise NotFound("session_not_found", "no such parking session")
    return stay


def start_stay_payment(session: Session, stay: Stay, now: datetime) -> Payment:
    """A payment of what the stay owes now, priced through now (``Conflict("nothing_owed")``
    when it owes nothing). An unpaid one for the same amount made in the last minutes is
    returned instead of a second."""
    owed = owed_now(session, stay, now)
    if owed.cents <= 0:
        raise Conflict("nothing_owed", "this parking session owes nothing now")
    pending = session.scalars(
        select(Payment)
        .where(
            Payment.stay_id == stay.id,
            Payment.kind == PaymentKind.STAY.value,
            Payment.status == "requires_payment",
            Payment.amount_cents == owed.cents,
            Payment.created_at >= now - REUSE_PENDING,
        )
        .order_by(Payment.id.desc())
    ).first()
    if pending is not None:
        return pending
    count = session.scalar(select(func.count()).where(Payment.stay_id == stay.id)) or 0
    payment = Payment(
        booking_id=None,
        stay_id=stay.id,
        paid_through=owed.through,
        amount_cents=owed.cents,
        currency=stay.currency,
        status="requires_payment",
        provider="pending",
        kind=PaymentKind.STAY.value,
        idempotency_key=f"stay:{stay.session_id}:{count + 1}",
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    session.flush()
    outbox.enqueue(
        session,
        "payment.create",
        {
            "payment_id": payment.id,
            "booking_id": None,
            "stay_id": stay.id,
            "amount_cents": payment.amount_cents,
            "currency": payment.currency,
            "kind": payment.kind,
            "idempotency_key": payment.idempotency_key,
        },
    )
    log_event(session, "stay.payment_started", now, lot_id=stay.lot_id, payment_id=payment.id)
    return payment


def _owed_through(session: Session, stay: Stay, through: datetime) -> int:
    """What the stay owed at ``through`` (the moment the payment was priced for)."""
    if stay.status == StayStatus.CLOSED or stay.kind == StayKind.PERMIT:
        return owed_now(session, stay, through).cents
    try:
        return outstanding(
            stay_terms(session, stay),
            paid_cents=stay.paid_cents,
            paid_through=stay.paid_through,
            at=through,
        )
    except ValueError:
        return max(0, stay.amount_due_cents - stay.paid_cents)


def record_stay_payment(session: Session, payment: Payment, now: datetime) -> str:
    """A stay payment was captured: apply it. Called once per capture, by
    :func:`cloud_api.payments.settlement.apply_captured` (which checks amount and currency,
    records ``captured_cents`` and refunds a second capture of the same payment).

    What the stay still owed through ``payment.paid_through`` is applied (``paid_cents``,
    ``paid_through``; a booking's stay also reduces the booking's ``amount_owed_cents``) and a
    ``stay_paid`` change goes to the lot; anything beyond is refunded automatically."""
    if payment.kind != PaymentKind.STAY.value or payment.stay_id is None:
        return "not_a_stay_payment"
    stay = session.get(Stay, payment.stay_id, with_for_update=True)
    if stay is None:
        return "ignored_unknown_stay"
    through = payment.paid_through or now
    applied = min(payment.amount_cents, _owed_through(session, stay, through))
    excess = payment.amount_cents - applied
    if applied > 0:
        _apply(session, stay, applied, through, payment, now)
    if excess > 0:
        _refund_excess(session, stay, payment, excess, now)
    if stay.status == StayStatus.CLOSED and owed_now(session, stay, now).cents == 0:
        void_unpaid_stay_payments(session, stay, now)
    log_event(
        session,
        "stay.paid",
        now,
        lot_id=stay.lot_id,
        stay=stay.session_id,
        payment_id=payment.id,
        applied_cents=applied,
        refunded_cents=excess,
    )
    if applied == 0:
        return "stay_paid_twice:refunded"
    return "stay_paid:refunded_excess" if excess else "stay_paid"


def _apply(
    session: Session, stay: Stay, cents: int, through: datetime, payment: Payment, now: datetime
) -> None:
    stay.paid_cents += cents
    if stay.paid_through is None or through > stay.paid_through:
        stay.paid_through = through
    stay.updated_at = now
    if stay.booking_id and stay.status == StayStatus.CLOSED:
        record_payment_received(session, stay.booking_id, cents, now=now)
    push_stay_paid(session, stay, payment, now)


def stay_payment(stay: Stay, payment_id: int | None) -> StayPayment:
    """The stay's payment state as the lot sees it (``stay_paid``)."""
    assert stay.paid_through is not None
    return StayPayment(
        stay_id=stay.gate_stay_id,
        plate=stay.plate[:32],
        paid_cents=stay.paid_cents,
        currency=stay.currency,
        paid_through=stay.paid_through,
        payment_id=str(payment_id) if payment_id is not None else None,
    )


def push_stay_paid(session: Session, stay: Stay, payment: Payment, now: datetime) -> None:
    """The ``stay_paid`` change on the lot's feed (the relay pushes it; a lot that was offline
    gets it from ``GET /lots/{lot_id}/changes``, or in a snapshot's ``stay_payments``)."""
    change = stay_payment(stay, payment.id)
    payload = {"cause": "paid", "stay_payment": change.model_dump(mode="json")}
    append_change(session, stay.lot_id, ChangeKind.STAY_PAID.value, payload, now)


def paid_stays_inside(session: Session, lot_id: int) -> list[StayPayment]:
    """For a snapshot: every open stay of the lot that something was paid for."""
    stays = session.scalars(
        select(Stay)
        .where(
            Stay.lot_id == lot_id,
            Stay.status == StayStatus.OPEN.value,
            Stay.paid_through.is_not(None),
        )
        .order_by(Stay.id)
    ).all()
    return [stay_payment(stay, _last_paid(session, stay)) for stay in stays]


def _last_paid(session: Session, stay: Stay) -> int | None:
    return session.scalar(
        select(func.max(Payment.id)).where(
            Payment.stay_id == stay.id,
            Payment.kind == PaymentKind.STAY.value,
            Payment.status == "succeeded",
        )
    )


def _refund_excess(
    session: Session, stay: Stay, payment: Payment, cents: int, now: datetime
) -> None:
    """Give back what a capture took beyond what the stay owed, against that same capture
    (capped, like every refund, at what it captured and has not refunded)."""
    log.warning("stay payment %s captured %d cents too many: refunding", payment.id, cents)
    key = f"{payment.idempotency_key}:refund-excess"
    refund_payment(session, payment, cents, key)
    log_event(session, "stay.refund_excess", now, lot_id=stay.lot_id, payment_id=payment.id)
