"""``POST /payments/webhook``: the payment provider tells us what happened to a payment.

Order of checks, each refusing with no effect at all:

1. signature (Stripe scheme, see :mod:`cloud_api.payments.signature`) → 400 ``bad_signature``;
2. timestamp within 300 s → 400 ``stale_signature``;
3. body is a JSON event with an id and a type → 400 ``malformed_event``;
4. event id not seen before → otherwise 200 ``duplicate`` (the provider retries deliveries).

The event id goes into ``webhook_events`` (unique) in the same transaction as the effect, so an
event is applied exactly once even when deliveries race. Effects: ``payment_intent.succeeded`` →
``bookings.confirm_payment`` (for an extension or overstay charge
``visits.record_payment_received``); ``payment_intent.payment_failed`` →
``bookings.release_booking``; ``charge.refunded`` → the refund rows are marked refunded.
Other types are recorded and ignored.

The app provides ``app.state.sessions`` (a ``sessionmaker``) and ``app.state.payment_provider``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import String, Text, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from starlette.concurrency import run_in_threadpool

from cloud_api.bookings import confirm_payment, get_booking, release_booking, request_payment
from cloud_api.changes import log_event
from cloud_api.db import Base
from cloud_api.errors import Conflict, NotFound
from cloud_api.models import BookingStatus, Payment, PaymentKind, UTCDateTime, utcnow
from cloud_api.payments.provider import PaymentProvider
from cloud_api.payments.signature import SIGNATURE_HEADER, StaleSignature, WebhookSignatureError
from cloud_api.stays import record_stay_payment
from cloud_api.visits import record_payment_received

__all__ = ["WebhookEvent", "apply_event", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["payments"])

MAX_BODY = 256 * 1024


class WebhookEvent(Base):
    """Every provider event applied, by id: the replay guard."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _answer(status: int, result: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"result": result, **extra}, status_code=status)


@router.post("/payments/webhook", summary="Payment provider webhook (Stripe signature scheme)")
async def payment_webhook(request: Request) -> JSONResponse:
    payload = await request.body()
    if len(payload) > MAX_BODY:
        return _answer(413, "too_large")
    provider: PaymentProvider = request.app.state.payment_provider
    try:
        event = provider.verify_webhook(payload, request.headers.get(SIGNATURE_HEADER))
    except StaleSignature as exc:
        log.warning("webhook refused: %s", exc)
        return _answer(400, "stale_signature")
    except WebhookSignatureError as exc:
        log.warning("webhook refused: %s", exc)
        return _answer(400, "bad_signature")
    except ValueError:  # signed, but not a JSON object (json.JSONDecodeError is a ValueError)
        return _answer(400, "malformed_event")
    event_id, kind = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(kind, str) or not event_id:
        return _answer(400, "malformed_event")
    sessions: sessionmaker[Session] = request.app.state.sessions
    clock = getattr(request.app.state, "clock", utcnow)
    outcome = await run_in_threadpool(apply_event, sessions, event, now=clock())
    return _answer(200, outcome, event_id=event_id)


def apply_event(sessions: sessionmaker[Session], event: dict[str, Any], *, now: datetime) -> str:
    """Apply a verified event once; returns the outcome (``duplicate`` for a replay)."""
    event_id, kind = str(event["id"]), str(event["type"])
    with sessions.begin() as session:
        record = WebhookEvent(event_id=event_id, type=kind, outcome="", received_at=now)
        try:
            with session.begin_nested():
                session.add(record)
                session.flush()
        except IntegrityError:
            log.info("webhook %s %s replayed: ignored", event_id, kind)
            return "duplicate"
        record.outcome = _effect(session, kind, _object(event), now)
    log.info("webhook %s %s: %s", event_id, kind, record.outcome)
    return record.outcome


def _object(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


def _effect(session: Session, kind: str, obj: dict[str, Any], now: datetime) -> str:
    if kind == "payment_intent.succeeded":
        return _succeeded(session, obj, now)
    if kind == "payment_intent.payment_failed":
        return _failed(session, obj, now)
    if kind == "charge.refunded":
        return _refunded(session, obj, now)
    return "ignored"


def _payment_for(session: Session, obj: dict[str, Any]) -> Payment | None:
    ref = obj.get("id")
    if not isinstance(ref, str):
        return None
    return session.scalars(
        select(Payment).where(Payment.provider_ref == ref).with_for_update()
    ).first()


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _booking_id(obj: dict[str, Any], payment: Payment | None) -> str | None:
    if payment is not None:
        return payment.booking_id
    booking_id = _metadata(obj).get("booking_id")
    return booking_id if isinstance(booking_id, str) else None


def _is_initial(payment: Payment | None, obj: dict[str, Any]) -> bool:
    if payment is None:
        return _metadata(obj).get("purpose", "booking") == "booking"
    return payment.kind == PaymentKind.CHARGE.value and payment.idempotency_key.endswith(":initial")


def _succeeded(session: Session, obj: dict[str, Any], now: datetime) -> str:
    payment = _payment_for(session, obj)
    if payment is not None and payment.kind == PaymentKind.STAY.value:
        return record_stay_payment(session, payment, now)  # pay by plate (cloud_api.stays)
    booking_id = _booking_id(obj, payment)
    if booking_id is None:
        return "ignored_unknown_payment"
    if payment is not None:
        payment.status = "succeeded"
        payment.updated_at = now
    try:
        if not _is_initial(payment, obj):
            received = obj.get("amount_received")
            amount = (
                payment.amount_cents if payment else received if isinstance(received, int) else 0
            )
            record_payment_received(session, booking_id, amount, now=now)
            return "owed_reduced"
        confirm_payment(session, booking_id, now=now)
    except NotFound:
        return "ignored_unknown_booking"
    except Conflict:
        return _refund_late_payment(session, booking_id, payment, now)
    return "confirmed"


def _refund_late_payment(
    session: Session, booking_id: str, payment: Payment | None, now: datetime
) -> str:
    """The money arrived for a booking already expired or released: give it back."""
    booking = get_booking(session, booking_id)
    if payment is None or booking.status == BookingStatus.CONFIRMED.value:
        return "ignored_not_pending"
    log.warning("payment for %s booking %s arrived late: refunding", booking.status, booking_id)
    request_payment(session, booking, payment.amount_cents, PaymentKind.REFUND, "late-payment")
    log_event(session, "payment.late_refund", now, booking=booking, payment_id=payment.id)
    return "refund_late_payment"


def _failed(session: Session, obj: dict[str, Any], now: datetime) -> str:
    payment = _payment_for(session, obj)
    if payment is not None and payment.kind == PaymentKind.STAY.value:
        payment.status, payment.updated_at = "failed", now  # the stay still owes; pay again
        return "stay_payment_failed"
    booking_id = _booking_id(obj, payment)
    if booking_id is None:
        return "ignored_unknown_payment"
    if payment is not None:
        payment.status = "failed"
        payment.updated_at = now
    if not _is_initial(payment, obj):
        return "charge_failed"
    error = obj.get("last_payment_error")
    code = error.get("code") if isinstance(error, dict) else None
    try:
        release_booking(session, booking_id, reason=f"payment_failed:{code or 'unknown'}", now=now)
    except NotFound:
        return "ignored_unknown_booking"
    return "released"


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
