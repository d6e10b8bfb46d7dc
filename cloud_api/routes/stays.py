"""Pay by plate (public, no login): the stays a plate owes for at a lot, a payment for one, and
the server-rendered page ``GET /lots/{lot_id}/pay`` (no build step) a lane display or a QR sign
links to (``?plate=`` prefills it).

Enumeration: every call counts against a per-client-address and a per-lot limit (429
``rate_limited``), counted in the database so that they hold across workers
(:mod:`cloud_api.rate_limits`); an unknown plate answers an empty list through the same queries
as a known one; the answers carry nothing but a session id, the entry time and the amount.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloud_api.deps import ApiError, Db, LotId, Now
from cloud_api.errors import InvalidRequest, NotFound
from cloud_api.models import Lot, Payment
from cloud_api.payments.checkout import try_open_checkout
from cloud_api.plates import normalise_plate
from cloud_api.rate_limits import SharedRateLimit
from cloud_api.schemas import Problem
from cloud_api.settings import Settings
from cloud_api.stays import OwingStay, get_stay, owing_stays, start_stay_payment

__all__ = ["router"]

router = APIRouter(tags=["pay by plate"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": Problem} for c in (404, 409, 422, 429)}


class StayOut(BaseModel):
    session_id: str
    entered_at: datetime
    amount_due_cents: int
    currency: str
    pay_url: str


class StayPaymentOut(BaseModel):
    payment_id: int
    status: str
    checkout_url: str


class _Limits:
    """Counted in the database: the same limits for every worker and process."""

    def __init__(self, settings: Settings) -> None:
        per_client = settings.pay_by_plate_per_client_per_minute
        per_lot = settings.pay_by_plate_per_lot_per_minute
        self.client = SharedRateLimit("pay-by-plate:client", per_client)
        self.lot = SharedRateLimit("pay-by-plate:lot", per_lot)


def _check_rate(db: Session, request: Request, lot_id: int, now: datetime) -> None:
    """Count the call against both limits; commits ``db`` (call before writing anything)."""
    state = request.app.state
    limits: _Limits | None = getattr(state, "pay_by_plate_limits", None)
    if limits is None:
        limits = state.pay_by_plate_limits = _Limits(state.settings)
    address = request.client.host if request.client else "unknown"
    if not limits.client.allow(db, address, now) or not limits.lot.allow(db, str(lot_id), now):
        raise ApiError(429, "rate_limited", "too many pay-by-plate requests; try again soon")


def _base(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.public_url.rstrip("/")


def _lot(db: Session, lot_id: int) -> Lot:
    lot = db.get(Lot, lot_id)
    if lot is None:
        raise ApiError(404, "lot_not_found", f"parking lot {lot_id} not found")
    return lot


def _view(item: OwingStay, base: str, lot_id: int, plate: str) -> StayOut:
    return StayOut(
        session_id=item.stay.session_id,
        entered_at=item.stay.entered_at,
        amount_due_cents=item.owed.cents,
        currency=item.stay.currency,
        pay_url=f"{base}/lots/{lot_id}/pay?plate={quote(plate)}",
    )


def _owing(db: Session, request: Request, lot_id: int, raw: str, now: datetime) -> list[StayOut]:
    _check_rate(db, request, lot_id, now)
    _lot(db, lot_id)
    try:
        plate = normalise_plate(raw)
    except InvalidRequest as exc:
        raise ApiError(422, exc.reason, exc.detail) from None
    base = _base(request)
    return [_view(item, base, lot_id, plate) for item in owing_stays(db, lot_id, plate, now)]


@router.get(
    "/lots/{lot_id}/sessions",
    response_model=list[StayOut],
    responses=ERRORS,
    summary="Parking sessions a plate owes for at a lot (pay by plate)",
)
def list_owing(
    lot_id: LotId,
    request: Request,
    db: Db,
    now: Now,
    plate: Annotated[str, Query(min_length=1, max_length=32)],
) -> list[StayOut]:
    return _owing(db, request, lot_id, plate, now)


def _pay(
    db: Session, request: Request, session_id: str, lot_id: int | None, now: datetime
) -> Payment:
    try:
        found = get_stay(db, session_id)
    except NotFound:
        found = None
    if found is None or (lot_id is not None and found.lot_id != lot_id):
        raise ApiError(404, "session_not_found", "no such parking session at this lot")
    _check_rate(db, request, found.lot_id, now)  # commits: before the stay's row lock
    stay = get_stay(db, session_id, for_update=True)
    payment = start_stay_payment(db, stay, now)
    db.commit()
    return payment


def _payment_out(request: Request, payment: Payment) -> StayPaymentOut:
    """The payment with its checkout opened now (committed first); if the provider cannot be
    reached, the hosted pay page, which opens the checkout on demand."""
    state = request.app.state
    opened = try_open_checkout(state.sessions, state.payment_provider, state.pay_links, payment.id)
    return StayPaymentOut(
        payment_id=payment.id,
        status=opened.status,
        checkout_url=opened.checkout_url or opened.pay_url,
    )


@router.post(
    "/sessions/{session_id}/pay",
    response_model=StayPaymentOut,
    status_code=201,
    responses=ERRORS,
    summary="Pay what a parking session owes now",
)
def pay_stay(session_id: str, request: Request, db: Db, now: Now) -> StayPaymentOut:
    return _payment_out(request, _pay(db, request, session_id, None, now))


@router.post(
    "/lots/{lot_id}/sessions/{session_id}/pay",
    response_model=StayPaymentOut,
    status_code=201,
    responses=ERRORS,
    summary="Pay what a parking session of this lot owes now",
)
def pay_lot_stay(
    lot_id: LotId, session_id: str, request: Request, db: Db, now: Now
) -> StayPaymentOut:
    return _payment_out(request, _pay(db, request, session_id, lot_id, now))


# -- the page ------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Pay for parking: {lot}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}}
table{{width:100%;border-collapse:collapse}}td,th{{padding:.4rem;border-bottom:1px solid #ccc}}
.problem{{color:#a00}}</style></head>
<body><h1>Pay for parking</h1><p>{lot}</p>
<form method="get" action="/lots/{lot_id}/pay">
<label>Number plate <input name="plate" value="{plate}" maxlength="32" required
autocomplete="off" autocapitalize="characters"></label> <button>Find my stay</button></form>
{body}</body></html>"""


def _table(lot_id: int, stays: list[StayOut]) -> str:
    if not stays:
        return "<p>Nothing to pay for this plate.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(s.entered_at.strftime('%Y-%m-%d %H:%M UTC'))}</td>"
        f"<td>{s.amount_due_cents / 100:.2f} {html.escape(s.currency)}</td>"
        f'<td><form method="post" action="/lots/{lot_id}/pay/{html.escape(s.session_id)}">'
        "<button>Pay</button></form></td></tr>"
        for s in stays
    )
    return f"<table><tr><th>Entered</th><th>Amount</th><th></th></tr>{rows}</table>"


@router.get("/lots/{lot_id}/pay", response_class=HTMLResponse, include_in_schema=False)
def pay_page(
    lot_id: LotId,
    request: Request,
    db: Db,
    now: Now,
    plate: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    lot = _lot(db, lot_id)
    body, status = "", 200
    if plate:
        try:
            body = _table(lot_id, _owing(db, request, lot_id, plate, now))
        except ApiError as exc:
            body, status = f'<p class="problem">{html.escape(exc.detail)}</p>', exc.status
    page = _PAGE.format(
        lot=html.escape(lot.name), lot_id=lot_id, plate=html.escape(plate), body=body
    )
    return HTMLResponse(page, status_code=status)


@router.post("/lots/{lot_id}/pay/{session_id}", include_in_schema=False)
def pay_from_page(
    lot_id: LotId, session_id: str, request: Request, db: Db, now: Now
) -> RedirectResponse:
    payment = _pay(db, request, session_id, lot_id, now)
    return RedirectResponse(_payment_out(request, payment).checkout_url, status_code=303)
