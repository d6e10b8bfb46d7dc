"""Exception → HTTP answer mapping: every refusal is a 4xx with a reason, never a 500."""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from cloud_api.deps import ApiError
from cloud_api.errors import BookingError, Conflict, InvalidRequest, NotFound, TooMany

__all__ = ["install_error_handlers"]

log = logging.getLogger(__name__)


def _problem(status: int, reason: str, detail: object) -> JSONResponse:
    return JSONResponse({"reason": reason, "detail": detail}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return _problem(exc.status, exc.reason, exc.detail)

    @app.exception_handler(BookingError)
    async def _booking_error(_r: Request, exc: BookingError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 422
        if isinstance(exc, InvalidRequest):
            status = 422
        elif isinstance(exc, TooMany):
            status = 429
        return _problem(status, exc.reason, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        return _problem(422, "invalid_request", errors)

    @app.exception_handler(IntegrityError)
    async def _integrity(_r: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity conflict: %s", exc.orig)
        return _problem(409, "conflict", "the change conflicts with existing data")

    @app.exception_handler(DataError)
    @app.exception_handler(asyncpg.DataError)  # asyncpg: the event-loop booking path
    async def _data(_r: Request, exc: Exception) -> JSONResponse:
        return _problem(422, "invalid_value", "a value is out of range or malformed")

    @app.exception_handler(asyncpg.IntegrityConstraintViolationError)
    async def _pg_integrity(_r: Request, exc: Exception) -> JSONResponse:
        log.info("integrity conflict: %s", exc)
        return _problem(409, "conflict", "the change conflicts with existing data")

    @app.exception_handler(OperationalError)
    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(asyncpg.OperatorInterventionError)  # shutdown, cannot connect now
    @app.exception_handler(asyncpg.InsufficientResourcesError)  # too many connections
    @app.exception_handler(ConnectionError)  # refused or reset while (re)connecting
    async def _busy(_r: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", getattr(exc, "orig", exc))
        return JSONResponse(
            {"reason": "database_busy", "detail": "retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
