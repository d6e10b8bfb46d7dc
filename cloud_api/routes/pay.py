"""The hosted pay pages: ``/pay/{public_id}`` and ``/pay/{public_id}/result`` (server-rendered
HTML, no login, no build step).

They work for any ``payments`` row, whatever it pays for (a booking, an extension, an overstay, a
stay paid by plate): nothing here reads a booking. The address is the payment's ``public_id``
(128 random bits, see :mod:`cloud_api.payments.checkout`), so holding the link is what allows
paying; the pages show the amount and what it is for, never a plate or a name.

- ``GET /pay/{public_id}``: paid → the result page; not payable any more → 409; Stripe → a
  redirect to its hosted Checkout (opened now if it is not yet: idempotent); the provider
  unreachable → 503 with Retry-After; the local provider → a Pay button.
- ``POST /pay/{public_id}/local``: the local provider's Pay button: completes the local payment,
  whose signed webhook confirms it as Stripe's would. A payment the provider no longer knows (it
  keeps them in memory; the cloud restarted) has its checkout re-opened first, idempotently.
- ``GET /pay/{public_id}/result``: paid, pending (refreshes itself), failed or cancelled.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud_api.models import Payment
from cloud_api.payments.checkout import (
    PaymentState,
    describe,
    find_by_public_id,
    payment_state,
    reopen_checkout,
    try_open_checkout,
)
from cloud_api.payments.local_provider import LocalProvider

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["pay"], include_in_schema=False)
PUBLIC_ID = re.compile(r"^[0-9a-f]{32}$")
RESULTS = {
    "succeeded": ("Paid", "Thank you: the payment is complete."),
    "failed": ("Payment failed", "The payment did not go through."),
    "cancelled": ("Cancelled", "This payment is no longer due."),
}


def _page(title: str, body: str, status: int = 200, *, refresh: int | None = None) -> Response:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{html.escape(title)} · ParkGate</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;"
        "padding:0 1rem}button{font-size:1.2rem;padding:.6rem 2rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(text, status_code=status, headers=headers)


def _amount(state: PaymentState) -> str:
    what = html.escape(describe(state.kind, state.booking_id))
    money = f"{state.amount_cents / 100:.2f} {html.escape(state.currency.upper())}"
    return f'<p>{what}</p><p class="amount"><strong>{money}</strong></p>'


def _not_found() -> Response:
    return _page("Payment not found", "<p>This payment link is not valid.</p>", 404)


def _load(request: Request, public_id: str) -> PaymentState | None:
    if not PUBLIC_ID.match(public_id):
        return None
    state = request.app.state
    with state.sessions() as session:
        payment = find_by_public_id(session, public_id)
        return payment_state(payment, state.pay_links) if payment else None


@router.get("/pay/{public_id}", response_class=HTMLResponse)
async def pay_page(request: Request, public_id: str) -> Response:
    found = await run_in_threadpool(_load, request, public_id)
    if found is None:
        return _not_found()
    if found.status == "succeeded":
        return RedirectResponse(request.app.state.pay_links.result(public_id), 303)
    if not found.payable:
        title, text = RESULTS.get(found.status, ("Not payable", "This payment cannot be paid."))
        return _page(title, _amount(found) + f"<p>{html.escape(text)}</p>", 409)
    app = request.app.state
    args = (app.sessions, app.payment_provider, app.pay_links, found.id)
    state = await run_in_threadpool(try_open_checkout, *args)
    if state.problem:
        body = _amount(state) + "<p>The payment service cannot be reached. Try again shortly.</p>"
        response = _page("Payment unavailable", body, 503)
        response.headers["Retry-After"] = "30"
        return response
    if state.checkout_url:
        return RedirectResponse(state.checkout_url, 303)
    if isinstance(app.payment_provider, LocalProvider):
        form = f'<form method="post" action="/pay/{public_id}/local"><button>Pay</button></form>'
        return _page("Pay", _amount(state) + form)
    return _page("Payment unavailable", _amount(state) + "<p>No way to pay here.</p>", 503)


@router.post("/pay/{public_id}/local")
async def pay_locally(request: Request, public_id: str) -> Response:
    provider: Any = request.app.state.payment_provider
    found = await run_in_threadpool(_load, request, public_id)
    if found is None or not isinstance(provider, LocalProvider):
        return _not_found()
    result = RedirectResponse(request.app.state.pay_links.result(public_id), 303)
    if not found.payable:
        return result
    app = request.app.state
    state = await run_in_threadpool(
        try_open_checkout, app.sessions, provider, app.pay_links, found.id
    )
    ref = await run_in_threadpool(_provider_ref, request, found.id)
    if not state.problem and ref is not None and ref not in provider.payments:
        # the provider forgot it (payments live in its memory: the cloud restarted since)
        state = await run_in_threadpool(
            reopen_checkout, app.sessions, provider, app.pay_links, found.id
        )
    if state.problem or ref is None or ref not in provider.payments:
        return _page("Payment unavailable", "<p>Try again shortly.</p>", 503)
    try:
        answer = await run_in_threadpool(provider.complete, ref)  # delivers the signed webhook
    except httpx.HTTPError as exc:  # the webhook could not be delivered: nothing was applied
        log.warning("local payment %s: webhook not delivered: %s", found.id, exc)
        return _page("Payment unavailable", "<p>Try again shortly.</p>", 503)
    log.info("local payment %s completed: webhook answered %s", found.id, answer.status_code)
    return result


def _provider_ref(request: Request, payment_id: int) -> str | None:
    with request.app.state.sessions() as session:
        payment = session.get(Payment, payment_id)
        return payment.provider_ref if payment else None


@router.get("/pay/{public_id}/result", response_class=HTMLResponse)
async def result_page(request: Request, public_id: str) -> Response:
    found = await run_in_threadpool(_load, request, public_id)
    if found is None:
        return _not_found()
    if found.status in RESULTS:
        title, text = RESULTS[found.status]
        return _page(title, _amount(found) + f"<p>{html.escape(text)}</p>")
    again = f'<p><a href="/pay/{public_id}">Pay now</a></p>'
    body = _amount(found) + "<p>Waiting for the payment to be confirmed…</p>" + again
    return _page("Pending", body, refresh=5)
