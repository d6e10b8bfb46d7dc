"""Access-list bench: a CSV import of 100,000 entries into one lot, through a real server on
SQLite and on durable PostgreSQL (issue 12: under 30 s, pushed as one ``lists_replaced``), and
the snapshot page a gate then fetches (``GET /lots/{id}/changes?snapshot=true``).

``python -m bench.access_list`` prints the lines; ``run()`` returns them for ``make bench``.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.migrate import upgrade
from cloud_api.models import LotChange
from devservices import PostgresInstance, running_server, seed_world

__all__ = ["run"]

ROWS = 100_000
TARGET_S = 30.0
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def _csv(rows: int) -> bytes:
    """``rows`` entries: permits with windows, a few with lanes, every tenth a deny."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    lines = ["plate,kind,category,valid_from,valid_until,note,lanes"]
    for i in range(rows):
        kind, category = ("deny", "blocked") if i % 10 == 0 else ("allow", "permit")
        until = (start + timedelta(days=365 + i % 30)).isoformat()
        lanes = "entry-1;exit-1" if i % 7 == 0 else ""
        lines.append(f"P{i:07d},{kind},{category},{start.isoformat()},{until},row {i},{lanes}")
    return ("\n".join(lines) + "\n").encode()


def _one(url: str, label: str, body: bytes) -> list[str]:
    upgrade(url)
    world = seed_world(url)
    operator = world.auth("operator") | {"Content-Type": "text/csv"}
    with running_server(url, workers=1) as base, httpx.Client(base_url=base, timeout=300) as http:
        started = time.perf_counter()
        answer = http.post(
            f"/lots/{world.lot_id}/access-list/import?mode=replace", content=body, headers=operator
        )
        took = time.perf_counter() - started
        answer.raise_for_status()
        started = time.perf_counter()
        page = http.get(f"/lots/{world.lot_id}/changes?snapshot=true", headers=world.auth("device"))
        snapshot_s = time.perf_counter() - started
        page.raise_for_status()
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        kinds = list(
            s.execute(
                select(LotChange.kind, func.count())
                .where(LotChange.lot_id == world.lot_id)
                .group_by(LotChange.kind)
            )
        )
    engine.dispose()
    entries = len(page.json()["list_entries"])
    verdict = "ok" if took < TARGET_S and dict(kinds).get("lists_replaced") == 1 else "FAIL"
    return [
        f"  {label}: import of {answer.json()['added']:,} rows {took:.1f} s "
        f"(target < {TARGET_S:.0f} s) {verdict}; feed rows by kind {dict(kinds)}",
        f"  {label}: snapshot page with {entries:,} list entries "
        f"({len(page.content) / 1e6:.1f} MB) in {snapshot_s:.1f} s",
    ]


def run() -> list[str]:
    body = _csv(ROWS)
    lines = [
        f"access_list: CSV import of {ROWS:,} rows ({len(body) / 1e6:.1f} MB) through "
        "cloud-api serve (1 worker), mode=replace, one lot; then the gate's snapshot page"
    ]
    with tempfile.TemporaryDirectory(prefix="bench-acl-") as tmp:
        lines += _one(f"sqlite:///{Path(tmp) / 'cloud.db'}", "SQLite", body)
    with PostgresInstance(settings=DURABLE) as pg:
        pg.create_database("bench_acl")
        lines += _one(pg.url("bench_acl"), "PostgreSQL (durable)", body)
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
