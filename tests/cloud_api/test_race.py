"""50 concurrent POST /bookings for one space through a real server: one 201, 49 × 409."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_api.migrate import upgrade
from devservices import World, running_server, seed_world

N = 50


async def _storm(base: str, world: World) -> Counter[int]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    space = world.space_ids[0]

    def body(i: int) -> dict[str, object]:
        offset = timedelta(minutes=i % 30)  # overlapping, not identical, windows
        return {
            "parking_lot_id": world.lot_id,
            "vehicle_plate": f"RACE{i}",
            "vehicle_type": "car",
            "space_id": space,
            "start_time": (start + offset).isoformat(),
            "end_time": (start + offset + timedelta(hours=1)).isoformat(),
        }

    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        tokens = [world.auth("alice"), world.auth("bob")]
        answers = await asyncio.gather(
            *(client.post("/bookings", json=body(i), headers=tokens[i % 2]) for i in range(N))
        )
    return Counter(r.status_code for r in answers)


def _assert_one_winner(url: str, workers: int) -> None:
    upgrade(url)
    world = seed_world(url)
    with running_server(url, workers=workers) as base:
        counts = asyncio.run(_storm(base, world))
    assert counts == Counter({201: 1, 409: N - 1}), counts


@pytest.mark.integration
def test_race_sqlite(tmp_path: Path) -> None:
    _assert_one_winner(f"sqlite:///{tmp_path / 'race.db'}", workers=2)


@pytest.mark.integration
def test_race_postgres(postgres_db: str) -> None:
    _assert_one_winner(postgres_db, workers=2)


async def _retries(base: str, world: World, n: int) -> list[httpx.Response]:
    """``n`` concurrent sends of one request with one ``Idempotency-Key`` (a client retrying)."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=5)
    body = {
        "parking_lot_id": world.lot_id,
        "vehicle_plate": "RETRY1",
        "vehicle_type": "car",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
    }
    headers = {**world.auth("alice"), "Idempotency-Key": "retry-1"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        first = await asyncio.gather(
            *(client.post("/bookings", json=body, headers=headers) for _ in range(n))
        )
        later = await client.post("/bookings", json=body, headers=headers)
        other = {**body, "vehicle_plate": "OTHER1"}
        reused = await client.post("/bookings", json=other, headers=headers)
        mine = await client.get("/bookings", headers=world.auth("alice"))
    return [*first, later, reused, mine]


@pytest.mark.integration
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_concurrent_retries_with_one_key_book_once(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'retry.db'}"
        if database == "sqlite"
        else request.getfixturevalue("postgres_db")
    )
    upgrade(url)
    world = seed_world(url)
    with running_server(url, workers=2) as base:
        *answers, reused, mine = asyncio.run(_retries(base, world, 20))
    assert (reused.status_code, reused.json()["reason"]) == (422, "idempotency_key_reused")
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers][:3]
    assert len({r.json()["booking_id"] for r in answers}) == 1
    assert all(r.json() == answers[-1].json() for r in answers)  # the stored answer, replayed
    assert [b["vehicle_plate"] for b in mine.json()] == ["RETRY1"]


async def _hold_storm(base: str, world: World, n: int) -> tuple[list[httpx.Response], Any]:
    """``n`` concurrent unpaid bookings of one customer, each in its own window (a space is
    free for every one): only the lot's ``max_unpaid_holds`` may be held."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)

    def body(i: int) -> dict[str, object]:
        begins = start + timedelta(hours=2 * i)
        return {
            "parking_lot_id": world.lot_id,
            "vehicle_plate": f"HOLD{i}",
            "vehicle_type": "car",
            "start_time": begins.isoformat(),
            "end_time": (begins + timedelta(hours=1)).isoformat(),
        }

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        answers = await asyncio.gather(
            *(client.post("/bookings", json=body(i), headers=world.auth("alice")) for i in range(n))
        )
        mine = (await client.get("/bookings", headers=world.auth("alice"))).json()
    return list(answers), mine


def _assert_holds_stop_at_the_limit(url: str) -> None:
    upgrade(url)
    world = seed_world(url)
    with running_server(url, workers=2) as base:
        answers, mine = asyncio.run(_hold_storm(base, world, 20))
    counts = Counter(r.status_code for r in answers)
    assert counts == Counter({201: 3, 429: 17}), counts
    assert {r.json()["reason"] for r in answers if r.status_code == 429} == {
        "too_many_unpaid_holds"
    }
    assert sorted(b["status"] for b in mine) == ["pending"] * 3


@pytest.mark.integration
def test_concurrent_unpaid_holds_of_one_customer_stop_at_the_limit(postgres_db: str) -> None:
    """The 429 check runs inside the booking statement under the customer's row lock (lg01):
    20 concurrent requests of one customer hold exactly ``max_unpaid_holds`` (3) spaces."""
    _assert_holds_stop_at_the_limit(postgres_db)


@pytest.mark.integration
def test_concurrent_unpaid_holds_stop_at_the_limit_on_sqlite(tmp_path: Path) -> None:
    """On SQLite every transaction is ``BEGIN IMMEDIATE``: the count and the insert of two
    requests (two worker processes) cannot interleave, so the limit holds there too."""
    _assert_holds_stop_at_the_limit(f"sqlite:///{tmp_path / 'holds.db'}")


async def _plate_storm(base: str, lot_id: int, n: int) -> Counter[int]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        answers = await asyncio.gather(
            *(
                client.get(f"/lots/{lot_id}/sessions", params={"plate": f"XX{i:03d}"})
                for i in range(n)
            )
        )
    return Counter(r.status_code for r in answers)


def _assert_pay_by_plate_limit_is_shared(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pay by plate's per-client limit (5 a minute here) is counted in the database: 30
    concurrent lookups from one address through two worker processes get exactly 5 answers,
    not 5 per worker."""
    monkeypatch.setenv("PARKGATE_PAY_BY_PLATE_PER_CLIENT_PER_MINUTE", "5")
    upgrade(url)
    world = seed_world(url)
    with running_server(url, workers=2) as base:
        counts = asyncio.run(_plate_storm(base, world.lot_id, 30))
    assert counts == Counter({200: 5, 429: 25}), counts


@pytest.mark.integration
def test_the_pay_by_plate_limit_holds_across_workers_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _assert_pay_by_plate_limit_is_shared(f"sqlite:///{tmp_path / 'plates.db'}", monkeypatch)


@pytest.mark.integration
def test_the_pay_by_plate_limit_holds_across_workers_on_postgres(
    postgres_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _assert_pay_by_plate_limit_is_shared(postgres_db, monkeypatch)
