"""The floor under ``POST /bookings`` on this machine: the cheapest FastAPI endpoint that
validates a booking-shaped body and makes one asyncpg round trip (``SELECT 1``). No auth, no
work, no writes. ``bench.cloud_api`` serves it like the API (uvicorn, same workers) to show how
much of the raw insert rate any FastAPI endpoint with one database round trip can reach here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel

POOL: list[asyncpg.Pool] = []


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    POOL.append(await asyncpg.create_pool(os.environ["FLOOR_DSN"], min_size=1, max_size=10))
    yield
    await POOL.pop().close()


app = FastAPI(lifespan=lifespan)


class Body(BaseModel):
    parking_lot_id: int
    vehicle_plate: str
    vehicle_type: str
    start_time: AwareDatetime
    end_time: AwareDatetime


@app.post("/bookings", status_code=201)
async def book(body: Body) -> JSONResponse:
    value = await POOL[0].fetchval("SELECT 1")
    return JSONResponse({"ok": value, "lot": body.parking_lot_id}, status_code=201)
