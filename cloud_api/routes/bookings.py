"""``/bookings``: create (idempotent by ``Idempotency-Key``), read, list, cancel, extend, plate."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Annotated, Any

from asyncpg import UniqueViolationError
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from cloud_api import bookings as svc
from cloud_api.access_codes import booking_access_code, qr_svg
from cloud_api.auth import can_see_booking
from cloud_api.booking_pg import PgBooker
from cloud_api.deps import ApiError, Caller, Db, Now
from cloud_api.errors import BookingError, NotFound
from cloud_api.models import Booking, IdempotencyRecord, Role, User
from cloud_api.payments.checkout import PayLinks, PaymentState, try_open_checkout
from cloud_api.routes.views import booking_out, booking_view, payment_due, payment_instructions
from cloud_api.schemas import (
    AccessCodeOut,
    BookingCreate,
    BookingOut,
    ExtendRequest,
    PlateChange,
    Problem,
)
from parkgate_protocol import parse_access_code

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["bookings"])
BookingId = Annotated[str, Path(max_length=24, description="reservation ID, e.g. bk_...")]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 404, 409, 422)
}


def visible_booking(db: Session, user: User, booking_id: str) -> Booking:
    """The booking if the caller may see it; another user's booking is reported missing."""
    try:
        booking = svc.get_booking(db, booking_id)
    except NotFound:
        booking = None
    if booking is None or not can_see_booking(db, user, booking):
        raise ApiError(404, "booking_not_found", f"booking {booking_id} not found")
    return booking


def _request_hash(body: BookingCreate) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def _replay(db: Session, user: User, key: str, digest: str, links: PayLinks) -> JSONResponse | None:
    record = db.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user.id, IdempotencyRecord.key == key
        )
    ).first()
    if record is None:
        return None
    if record.request_hash != digest:
        raise ApiError(422, "idempotency_key_reused", "this key was used for another request")
    if set(record.response) == {"booking_id"}:  # claimed by booking_pg; answer not stored yet
        booking = svc.get_booking(db, record.response["booking_id"])
        out = booking_out(db, booking, links)
        return JSONResponse(out.model_dump(mode="json"), status_code=201)
    return JSONResponse(record.response, status_code=record.status_code)


@router.post(
    "/bookings",
    status_code=201,
    response_model=BookingOut,
    responses=ERRORS,
    summary="Book a space (pending until paid within the lot's hold time)",
)
async def create_booking(
    request: Request,
    body: BookingCreate,
    user: Caller,
    now: Now,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Any:
    """PostgreSQL: one statement on the event loop (``cloud_api.booking_pg``); SQLite, a lapsed
    hold in the way, or a replay: the ORM path in the threadpool. Once the booking is committed
    its payment's checkout is opened (:func:`_with_checkout`)."""
    digest = _request_hash(body) if idempotency_key else ""
    req = svc.BookingRequest(
        lot_id=body.parking_lot_id,
        plate=body.vehicle_plate,
        vehicle_type=body.vehicle_type,
        start=body.start_time,
        end=body.end_time,
        space_id=body.space_id,
    )
    state = request.app.state
    booker: PgBooker | None = state.booker
    if booker is not None:
        out = await _book_on_loop(booker, state, user, req, now, (idempotency_key, digest))
        if out is not None:
            return _created(out, req)
    sync_args = (state.sessions, state.pay_links, user, req, now, idempotency_key, digest)
    answer = await run_in_threadpool(_book_in_thread, *sync_args)
    if isinstance(answer, JSONResponse):
        if answer.status_code != 201:
            return answer
        # a replay: the stored answer, with the payment's checkout as it is now
        answer = BookingOut.model_validate_json(bytes(answer.body))
    return _created(await _with_checkout(state, answer), req)


async def _with_checkout(state: Any, out: BookingOut) -> BookingOut:
    """``out`` with its payment's checkout, opened now that the booking is committed."""
    if out.payment is None or out.payment.payment_id is None:
        return out
    opened = await _open_checkout(state, out.payment.payment_id)
    return out.model_copy(update={"payment": payment_instructions(opened, out.hold_expires_at)})


async def _open_checkout(state: Any, payment_id: int) -> PaymentState:
    args = (state.sessions, state.payment_provider, state.pay_links, payment_id)
    return await run_in_threadpool(try_open_checkout, *args)


async def _book_on_loop(
    booker: PgBooker,
    state: Any,
    user: User,
    req: svc.BookingRequest,
    now: datetime,
    idempotency: tuple[str | None, str],
) -> BookingOut | None:
    """The booking's answer, or ``None`` when the ORM path must answer (a replay, a key taken
    by a concurrent request, a lapsed hold to expire). A used key needs no lookup first: the
    statement claims it and fails (writing nothing) if it is taken."""
    key, digest = idempotency
    try:
        created = await booker.book(user.id, req, now, (key, digest) if key else None)
    except UniqueViolationError:
        return None  # the key was used (earlier or concurrently): replay, or 422 if reused
    except BookingError:
        if key and await booker.key_claimed(user.id, key):
            return None  # the space went to an earlier request with this key: replay it
        raise
    if created is None:
        return None
    due = await _open_checkout(state, created.payment_id) if created.payment_id else None
    out = booking_view(created.booking, created.space_label, due)
    if key:
        await booker.store_answer(user.id, key, out.model_dump_json())
    return out


def _book_in_thread(
    sessions: sessionmaker[Session],
    links: PayLinks,
    user: User,
    req: svc.BookingRequest,
    now: datetime,
    key: str | None,
    digest: str,
) -> BookingOut | JSONResponse:
    """The ORM path, in one transaction, with idempotency-key replay."""
    with sessions() as db:
        if key and (replayed := _replay(db, user, key, digest, links)):
            return replayed
        try:
            booking = svc.create_booking(db, user, req, now)
            out = None
            if key:
                out = booking_out(db, booking, links)
                db.add(
                    IdempotencyRecord(
                        user_id=user.id,
                        key=key,
                        request_hash=digest,
                        status_code=201,
                        response=out.model_dump(mode="json"),
                    )
                )
            db.commit()
        except (BookingError, IntegrityError):
            db.rollback()
            if key and (replayed := _replay(db, user, key, digest, links)):
                return replayed  # a concurrent retry with the same key won
            raise
        return out or booking_out(db, booking, links)  # after commit: change-feed lock gone


def _created(out: BookingOut, req: svc.BookingRequest) -> Response:
    log.info("booking %s created for lot %s space %s", out.booking_id, req.lot_id, out.space_id)
    return Response(out.model_dump_json(), status_code=201, media_type="application/json")


@router.get("/bookings", response_model=list[BookingOut], summary="The caller's own bookings")
def list_bookings(
    request: Request,
    db: Db,
    user: Caller,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[BookingOut]:
    stmt = select(Booking).where(Booking.user_id == user.id)
    if status:
        stmt = stmt.where(Booking.status == status)
    rows = db.scalars(stmt.order_by(Booking.start_time.desc()).limit(limit))
    return [booking_out(db, b, request.app.state.pay_links) for b in rows]


@router.get("/bookings/{booking_id}", response_model=BookingOut, responses=ERRORS)
def get_booking(request: Request, booking_id: BookingId, db: Db, user: Caller) -> BookingOut:
    return booking_out(db, visible_booking(db, user, booking_id), request.app.state.pay_links)


def _owner_or_staff(db: Session, user: User, booking_id: str) -> Booking:
    booking = visible_booking(db, user, booking_id)
    if user.role == Role.DEVICE.value:
        raise ApiError(403, "forbidden", "devices cannot change bookings")
    return booking


@router.post("/bookings/{booking_id}/cancel", response_model=BookingOut, responses=ERRORS)
def cancel_booking(
    request: Request, booking_id: BookingId, db: Db, user: Caller, now: Now
) -> BookingOut:
    booking = svc.cancel_booking(db, _owner_or_staff(db, user, booking_id), now=now)
    db.commit()
    return booking_out(db, booking, request.app.state.pay_links)


@router.post("/bookings/{booking_id}/extend", response_model=BookingOut, responses=ERRORS)
def extend_booking(
    request: Request, booking_id: BookingId, body: ExtendRequest, db: Db, user: Caller, now: Now
) -> BookingOut:
    """The answer's ``payment`` is the extension's (owed until paid; 409 ``payment_pending``
    while the booking or an earlier extension is unpaid, 409 ``paid_by_plate`` once the car
    inside paid its overstay by plate)."""
    booking = _owner_or_staff(db, user, booking_id)
    svc.extend_booking(db, booking, body.end_time, now=now)
    due = payment_due(db, booking.id)
    due_id = due.id if due is not None else None
    db.commit()  # no transaction of ``db`` stays open while the checkout is opened
    state = request.app.state
    if due_id is not None:  # a provider failure leaves the checkout to the pay page
        try_open_checkout(state.sessions, state.payment_provider, state.pay_links, due_id)
        db.expire_all()  # written by another session
    return booking_out(db, booking, state.pay_links)


@router.put(
    "/bookings/{booking_id}/plate",
    response_model=BookingOut,
    responses=ERRORS,
    summary="Change the plate (temporary or rental car); 409 car_inside while the car is parked",
)
def change_plate(
    request: Request, booking_id: BookingId, body: PlateChange, db: Db, user: Caller, now: Now
) -> BookingOut:
    booking = _owner_or_staff(db, user, booking_id)
    svc.change_plate(db, booking, body.vehicle_plate, now=now)
    db.commit()
    return booking_out(db, booking, request.app.state.pay_links)


@router.get(
    "/bookings/{booking_id}/access-code",
    response_model=AccessCodeOut,
    responses=ERRORS,
    summary="The booking's gate access code and its QR image (owner or lot staff)",
)
def access_code(booking_id: BookingId, db: Db, user: Caller, now: Now) -> AccessCodeOut:
    """409 ``code_unavailable`` for a cancelled, finished or past booking. A lot's first code
    makes the lot's signing key (pushed to its gate), so this may write."""
    booking = _owner_or_staff(db, user, booking_id)
    code = booking_access_code(db, booking, now)
    db.commit()
    return AccessCodeOut(
        booking_id=booking.id,
        code=code,
        qr_svg=qr_svg(code),
        expires_at=parse_access_code(code).expires_at,
    )
