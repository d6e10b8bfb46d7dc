"""``POST /payments/webhook``: the payment provider tells us what happened to a payment.

Order of checks, each refusing with no effect at all:

1. signature (Stripe scheme, see :mod:`cloud_api.payments.signature`) → 400 ``bad_signature``;
2. timestamp within 300 s → 400 ``stale_signature``;
3. body is a JSON event with an id and a type → 400 ``malformed_event``;
4. event id not seen before → otherwise 200 ``duplicate`` (the provider retries deliveries).

The event id goes into ``webhook_events`` (unique) in the same transaction as the effect, so an
event is applied exactly once even when deliveries race. The effects
(``checkout.session.completed`` / ``expired``, ``payment_intent.succeeded`` / ``payment_failed``,
``charge.refunded``) are :mod:`cloud_api.payments.settlement`'s; other types are recorded and
ignored. An event whose amount or currency is not its payment's applies nothing and still
answers 200 (its outcome says so), so the provider stops retrying it.

The app provides ``app.state.sessions`` (a ``sessionmaker``) and ``app.state.payment_provider``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import String, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from starlette.concurrency import run_in_threadpool

from cloud_api.db import Base
from cloud_api.models import UTCDateTime, utcnow
from cloud_api.payments.provider import PaymentProvider
from cloud_api.payments.settlement import settle_event
from cloud_api.payments.signature import SIGNATURE_HEADER, StaleSignature, WebhookSignatureError

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
    except (ValueError, RecursionError):  # signed, but not a JSON object (or nested too deep)
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
        record.outcome = settle_event(session, kind, _object(event), now)
    log.info("webhook %s %s: %s", event_id, kind, record.outcome)
    return record.outcome


def _object(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}
