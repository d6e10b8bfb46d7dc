"""What a verified provider event does to our payments (called by ``cloud_api.webhooks`` inside
the transaction that records the event id).

- ``checkout.session.completed`` (``payment_status`` paid) and ``payment_intent.succeeded``: the
  money was captured. The event's amount and currency must be the payment row's, else nothing
  is applied (``amount_mismatch`` / ``currency_mismatch``, logged and in the event log). The
  first capture of a payment applies its effect through :func:`apply_captured`; the same capture
  reported again (the checkout's and its intent's events, a replay) applies nothing; a second,
  different capture of the same payment (two checkouts both paid) is refunded in full.
- ``checkout.session.expired``: the payment's checkout is forgotten; the pay page opens a new one.
- ``payment_intent.payment_failed``: a declined attempt. Inside a Stripe Checkout the customer can
  retry, so nothing changes; otherwise the payment failed and a pending booking is released. A
  payment we voided stays voided.
- ``charge.refunded``: our refund rows are marked refunded.

Payments are found by our id in the object's metadata (we put it there), else by the provider's
references (checkout session id, PaymentIntent id).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud_api.bookings import confirm_payment, get_booking, release_booking
from cloud_api.changes import log_event
from cloud_api.errors import Conflict, NotFound
from cloud_api.models import Payment, PaymentKind
from cloud_api.payments.refunds import refund_payment
from cloud_api.stays import record_stay_payment, void_unpaid_booking_stay_payments
from cloud_api.visits import record_payment_received

__all__ = ["apply_captured", "record_capture", "settle_event"]

log = logging.getLogger(__name__)


def settle_event(session: Session, kind: str, obj: dict[str, Any], now: datetime) -> str:
    """Apply one verified event's object; returns the outcome recorded with the event."""
    if kind == "checkout.session.completed":
        return _checkout_completed(session, obj, now)
    if kind == "checkout.session.expired":
        return _checkout_expired(session, obj, now)
    if kind == "payment_intent.succeeded":
        return _intent_succeeded(session, obj, now)
    if kind == "payment_intent.payment_failed":
        return _intent_failed(session, obj, now)
    if kind == "charge.refunded":
        return _refunded(session, obj, now)
    return "ignored"


# -- finding the payment ------
def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _our_id(obj: dict[str, Any]) -> int | None:
    for value in (_metadata(obj).get("payment_id"), obj.get("client_reference_id")):
        if isinstance(value, str) and value.isdigit() and len(value) < 12:
            return int(value)
    return None


def _find(session: Session, obj: dict[str, Any], *refs: Any) -> Payment | None:
    our_id = _our_id(obj)
    stmt = select(Payment).with_for_update()
    if our_id is not None:
        payment = session.scalars(stmt.where(Payment.id == our_id)).first()
        if payment is not None and payment.kind != PaymentKind.REFUND.value:
            return payment
    known = [ref for ref in refs if isinstance(ref, str) and ref]
    if not known:
        return None
    return session.scalars(
        stmt.where(
            Payment.kind != PaymentKind.REFUND.value,
            or_(Payment.provider_ref.in_(known), Payment.checkout_ref.in_(known)),
        )
    ).first()


# -- captures ------
def _checkout_completed(session: Session, obj: dict[str, Any], now: datetime) -> str:
    if obj.get("payment_status") != "paid":
        return "checkout_awaiting_payment"  # an asynchronous method: its intent event follows
    intent = obj.get("payment_intent")
    payment = _find(session, obj, obj.get("id"), intent)
    if payment is None:
        return "ignored_unknown_payment"
    paid = (obj.get("amount_total"), obj.get("currency"))
    return record_capture(session, payment, intent if isinstance(intent, str) else None, paid, now)


def _intent_succeeded(session: Session, obj: dict[str, Any], now: datetime) -> str:
    payment = _find(session, obj, obj.get("id"))
    if payment is None:
        return "ignored_unknown_payment"
    received = obj.get("amount_received")
    amount = received if isinstance(received, int) and received else obj.get("amount")
    ref = obj.get("id")
    return record_capture(
        session, payment, ref if isinstance(ref, str) else None, (amount, obj.get("currency")), now
    )


def _mismatch(payment: Payment, paid: tuple[Any, Any]) -> str | None:
    amount, currency = paid
    if not isinstance(amount, int) or isinstance(amount, bool) or amount != payment.amount_cents:
        return "amount_mismatch"
    if not isinstance(currency, str) or currency.lower() != payment.currency.lower():
        return "currency_mismatch"
    return None


def record_capture(
    session: Session, payment: Payment, intent: str | None, paid: tuple[Any, Any], now: datetime
) -> str:
    """The provider captured ``paid`` = (amount, currency) for ``payment`` through its payment
    ``intent``: checked, applied once, a second capture refunded; returns the outcome."""
    problem = _mismatch(payment, paid)
    if problem is not None:
        log.warning(
            "payment %s: event reports %s %s, the payment is %s %s: nothing applied",
            payment.id,
            *paid,
            payment.amount_cents,
            payment.currency,
        )
        log_event(
            session,
            "payment.mismatch",
            now,
            lot_id=None,
            payment_id=payment.id,
            problem=problem,
            reported=[str(part) for part in paid],
            expected=[payment.amount_cents, payment.currency],
        )
        return problem
    if payment.captured_cents:
        if intent is None or payment.provider_ref in (None, intent):
            payment.provider_ref = payment.provider_ref or intent
            return "already_applied"  # the same capture: the checkout's and its intent's events
        return _refund_duplicate(session, payment, intent, now)
    payment.captured_cents = payment.amount_cents
    payment.status = "succeeded"
    payment.provider_ref = intent or payment.provider_ref
    payment.updated_at = now
    return apply_captured(session, payment, now)


def _refund_duplicate(session: Session, payment: Payment, intent: str, now: datetime) -> str:
    key = f"{payment.id}:refund:duplicate:{intent}"
    if session.scalar(select(Payment.id).where(Payment.idempotency_key == key)) is not None:
        return "duplicate_capture_refunded_already"
    log.warning("payment %s was paid twice (%s): refunding the second", payment.id, intent)
    refund_payment(session, payment, payment.amount_cents, key, charge_ref=intent, whole=True)
    log_event(
        session, "payment.duplicate_capture", now, lot_id=None, payment_id=payment.id, ref=intent
    )
    return "duplicate_capture_refunded"


def apply_captured(session: Session, payment: Payment, now: datetime) -> str:
    """The one place a captured payment takes effect, by its kind.

    ``charge`` tagged ``initial``: the booking is confirmed (or, released meanwhile, the money
    is refunded); ``extension``, ``overstay`` (and older untagged ``charge`` rows): what the
    booking owes goes down; ``stay``: the parking session is paid through the moment it was
    priced for and the lot is told (``stay_paid``), a capture beyond what it owed refunded.
    Other kinds are logged and left as captured until wired here.
    """
    booking_id: str | None = payment.booking_id
    kind = payment.kind
    if kind == PaymentKind.STAY.value:
        return record_stay_payment(session, payment, now)  # pay by plate (cloud_api.stays)
    if booking_id and kind == PaymentKind.CHARGE.value and _is_initial(payment):
        return _confirm(session, payment, booking_id, now)
    owed_kinds = (PaymentKind.EXTENSION.value, PaymentKind.OVERSTAY.value, PaymentKind.CHARGE.value)
    if booking_id and kind in owed_kinds:
        return _reduce_owed(session, payment, booking_id, now)
    log.warning("captured payment %s of kind %s: nothing applies it yet", payment.id, kind)
    log_event(
        session, "payment.unapplied", now, lot_id=None, payment_id=payment.id, payment_kind=kind
    )
    return f"unapplied_kind:{kind}"


def _reduce_owed(session: Session, payment: Payment, booking_id: str, now: datetime) -> str:
    """An extension or overstay payment: what the booking still owes goes down by it; what it
    took beyond that (the debt was settled another way meanwhile: pay by plate, an early-exit
    credit, a cancellation) is refunded against this capture at once. A booking that owes
    nothing after it voids its closed stay's unpaid pay-by-plate payments too."""
    try:
        booking = get_booking(session, booking_id, for_update=True)
    except NotFound:
        return "ignored_unknown_booking"
    applied = min(payment.amount_cents, booking.amount_owed_cents)
    if applied:
        record_payment_received(session, booking_id, applied, now=now)
    if not booking.amount_owed_cents:  # settled: pay by plate cannot take it again either
        void_unpaid_booking_stay_payments(session, booking_id, now)
    excess = payment.amount_cents - applied
    if not excess:
        return "owed_reduced"
    log.warning(
        "payment %s took %d cents more than booking %s owed: refunding",
        payment.id,
        excess,
        booking_id,
    )
    refund_payment(session, payment, excess, f"{payment.idempotency_key}:refund-excess")
    log_event(
        session, "payment.refund_excess", now, lot_id=None, payment_id=payment.id, cents=excess
    )
    return "owed_reduced:refunded_excess" if applied else "nothing_owed:refunded"


def _is_initial(payment: Payment) -> bool:
    return payment.idempotency_key.endswith(":initial")


def _confirm(session: Session, payment: Payment, booking_id: str, now: datetime) -> str:
    try:
        confirm_payment(session, booking_id, now=now)
    except NotFound:
        return "ignored_unknown_booking"
    except Conflict:  # released or expired meanwhile: give the money back
        log.warning("payment %s for booking %s arrived late: refunding", payment.id, booking_id)
        refund_payment(session, payment, payment.amount_cents, f"{booking_id}:refund:late-payment")
        log_event(session, "payment.late_refund", now, lot_id=None, payment_id=payment.id)
        return "refund_late_payment"
    return "confirmed"


# -- other events ------
def _checkout_expired(session: Session, obj: dict[str, Any], now: datetime) -> str:
    ref = obj.get("id")
    payment = _find(session, obj, ref)
    if payment is None or payment.checkout_ref != ref:
        return "ignored_unknown_checkout"
    payment.checkout_ref = payment.checkout_url = None
    payment.checkouts += 1
    payment.updated_at = now
    return "checkout_expired"


def _intent_failed(session: Session, obj: dict[str, Any], now: datetime) -> str:
    payment = _find(session, obj, obj.get("id"))
    if payment is None:
        return "ignored_unknown_payment"
    if payment.captured_cents:
        return "already_applied"
    if payment.status == "cancelled":
        return "already_voided"  # a decline on its open checkout does not make it payable
    if (payment.checkout_ref or "").startswith("cs_"):
        return "attempt_failed"  # the customer is still on the checkout page and can retry
    booking_id: str | None = payment.booking_id
    outcome = "charge_failed"
    if booking_id and payment.kind == PaymentKind.CHARGE.value and _is_initial(payment):
        error = obj.get("last_payment_error")
        code = error.get("code") if isinstance(error, dict) else None
        reason = f"payment_failed:{code or 'unknown'}"
        try:
            release_booking(session, booking_id, reason=reason, now=now)
            outcome = "released"
        except NotFound:
            outcome = "ignored_unknown_booking"
    payment.status = "failed"
    payment.updated_at = now
    return outcome


def _refunded(session: Session, obj: dict[str, Any], now: datetime) -> str:
    refunds = obj.get("refunds")
    items = refunds.get("data") if isinstance(refunds, dict) else None
    items = [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []
    refs = [r["id"] for r in items if isinstance(r.get("id"), str)]
    ids = [
        int(m["payment_id"])
        for r in items
        if str((m := _metadata(r)).get("payment_id", "")).isdigit()
    ]
    rows = session.scalars(
        select(Payment).where(
            Payment.kind == PaymentKind.REFUND.value,
            or_(Payment.provider_ref.in_(refs), Payment.id.in_(ids)),
        )
    ).all()
    for row in rows:
        row.status = "refunded"
        row.updated_at = now
    charge_ref = obj.get("payment_intent")
    log_event(
        session,
        "payment.refunded",
        now,
        lot_id=None,
        charge=charge_ref if isinstance(charge_ref, str) else None,
        refunds=refs,
        payment_ids=[row.id for row in rows],
    )
    return f"refund_recorded:{len(rows)}"
