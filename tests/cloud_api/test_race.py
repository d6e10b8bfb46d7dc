"""50 concurrent POST /bookings for one space through a real server: one 201, 49 × 409."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cloud_api.migrate import upgrade
from tests.cloud_api.support import World, running_server, seed_world

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
