"""Cloud API bench: bookings/s and availability latency through a real server on PostgreSQL.

Compared, in the same run on the same private cluster, with the raw rate of EXCLUDE-constrained
inserts by psycopg (no HTTP, no ORM). Availability reads are measured with and without Redis.
``python -m bench.cloud_api`` prints the lines; ``run()`` returns them for ``make bench``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from cloud_api.migrate import upgrade
from tests.cloud_api.support import World, running_server, seed_world
from tests.support.services import PostgresInstance, free_port, wait_for_port

__all__ = ["run"]

BOOKINGS_PER_LEVEL = 1200
READS_PER_LEVEL = 2000
WORKERS = max(2, os.cpu_count() or 2)


def _raw_insert_rate(dsn: str, clients: int, n: int) -> float:
    """Non-overlapping inserts into an EXCLUDE-constrained table, ``clients`` connections."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        conn.execute("DROP TABLE IF EXISTS raw_bookings")
        conn.execute(
            "CREATE TABLE raw_bookings (id bigserial primary key, space_id int, "
            "start_time timestamptz, end_time timestamptz, status text, "
            "EXCLUDE USING gist (space_id WITH =, tstzrange(start_time, end_time) WITH &&) "
            "WHERE (status IN ('pending','confirmed')))"
        )
    t0 = datetime(2031, 1, 1, tzinfo=UTC)

    async def worker(k: int) -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for i in range(k, n, clients):
                s = t0 + timedelta(hours=i)
                await conn.execute(
                    "INSERT INTO raw_bookings (space_id, start_time, end_time, status) "
                    "VALUES (%s, %s, %s, 'pending')",
                    (i % 50, s, s + timedelta(hours=1)),
                )

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        return n / (time.perf_counter() - start)

    return asyncio.run(main())


def _booking_body(world: World, i: int) -> dict[str, object]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1, hours=i)
    return {
        "parking_lot_id": world.lot_id,
        "vehicle_plate": f"B{i}",
        "vehicle_type": "car",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=50)).isoformat(),
    }


async def _drive(base: str, clients: int, requests: list[tuple[str, str, dict]]) -> list[float]:  # type: ignore[type-arg]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    queue = list(reversed(requests))
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one() -> None:
            while queue:
                method, path, kw = queue.pop()
                t = time.perf_counter()
                r = await client.request(method, path, **kw)
                latencies.append(time.perf_counter() - t)
                statuses.append(r.status_code)

        await asyncio.gather(*(one() for _ in range(clients)))
    bad = [s for s in statuses if s >= 400]
    if bad:
        raise RuntimeError(f"{len(bad)} failed requests, e.g. {bad[:3]}")
    return latencies


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def _api(
    pg: PostgresInstance, redis_url: str | None, level: int, lines: list[str], raw: float
) -> None:
    db = f"bench_{level}_{'r' if redis_url else 'n'}"
    pg.create_database(db)
    url = pg.url(db)
    upgrade(url)
    world = seed_world(url, {"car": 50})
    with running_server(url, workers=WORKERS, redis_url=redis_url) as base:
        tokens = [world.auth("alice"), world.auth("bob")]
        if redis_url is None:
            reqs = [
                ("POST", "/bookings", {"json": _booking_body(world, i), "headers": tokens[i % 2]})
                for i in range(BOOKINGS_PER_LEVEL)
            ]
            t = time.perf_counter()
            asyncio.run(_drive(base, level, reqs))
            rate = BOOKINGS_PER_LEVEL / (time.perf_counter() - t)
            verdict = "PASS" if rate >= 0.25 * raw else "FAIL"
            lines.append(
                f"  API bookings/s @ {level:>2} clients: {rate:8.1f}  "
                f"({100 * rate / raw:.0f}% of raw; target ≥ 25%) {verdict}"
            )
        windows = [(datetime.now(UTC) + timedelta(days=1, hours=i % 24)) for i in range(24)]
        reads = [
            (
                "GET",
                f"/parkingLots/{world.lot_id}/availability",
                {
                    "params": {
                        "start": w.replace(microsecond=0).isoformat(),
                        "end": (w + timedelta(hours=2)).replace(microsecond=0).isoformat(),
                    }
                },
            )
            for w in windows
        ] * (READS_PER_LEVEL // 24)
        asyncio.run(_drive(base, level, reads[:200]))  # warm up
        lat = asyncio.run(_drive(base, level, reads))
        p99 = _pct(lat, 0.99)
        tag = "redis" if redis_url else "no cache"
        verdict = "" if level != 64 else (" PASS" if p99 <= 20 else " FAIL") + " (p99 ≤ 20 ms)"
        lines.append(
            f"  availability @ {level:>2} clients ({tag}): p50 {_pct(lat, 0.5):6.2f} ms"
            f"  p99 {p99:6.2f} ms{verdict}"
        )


def run() -> list[str]:
    lines = [f"cloud_api (PostgreSQL, uvicorn workers={WORKERS})"]
    pg = PostgresInstance()
    pg.start()
    redis_dir = Path(tempfile.mkdtemp(prefix="pg-redis-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--dir", str(redis_dir)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(redis_port)
        pg.create_database("bench_raw")
        raw = {c: _raw_insert_rate(pg.dsn("bench_raw"), c, 3000) for c in (16, 64)}
        for level in (16, 64):
            lines.append(f"  raw EXCLUDE inserts/s @ {level:>2} connections: {raw[level]:8.1f}")
            _api(pg, None, level, lines, raw[level])
            _api(pg, f"redis://127.0.0.1:{redis_port}/0", level, lines, raw[level])
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(redis_dir, ignore_errors=True)
        pg.cleanup()
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
