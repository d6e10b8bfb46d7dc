"""The Redis availability cache against a private redis-server: every booking change is seen.

A read is served from the cache, then a booking, cancel, extend, webhook confirmation or hold
expiry changes the lot, and the next read must be recomputed (the generation moved on) and agree
with the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from cloud_api.app import create_app
from cloud_api.daemons import outbox_handlers
from cloud_api.outbox import OutboxWorker
from cloud_api.payments import InProcessTransport, LocalProvider
from cloud_api.settings import Settings
from devservices import RedisInstance, World, seed_world
from tests.support.cloud import T0, Clock, allow_unpaid_holds

SECRET = "whsec_test_cache"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisInstance]:
    with RedisInstance(tmp_path / "redis") as instance:
        yield instance


class Lot:
    def __init__(self, client: httpx.Client, world: World, r: redis.Redis, clock: Clock) -> None:
        self.client, self.world, self.redis, self.clock = client, world, r, clock

    def free(self, start_h: int, end_h: int) -> int:
        params = {
            "start": (T0 + timedelta(hours=start_h)).isoformat(),
            "end": (T0 + timedelta(hours=end_h)).isoformat(),
            "vehicle_type": "car",
        }
        r = self.client.get(f"/parkingLots/{self.world.lot_id}/availability", params=params)
        assert r.status_code == 200, r.text
        return int(r.json()["vehicle_types"][0]["free_spaces"])

    def generation(self) -> int:
        return int(self.redis.get(f"avail:gen:{self.world.lot_id}") or 0)

    def cached_answers(self) -> int:
        return len(self.redis.keys(f"avail:{self.world.lot_id}:*"))

    def book(self, start_h: int, end_h: int) -> dict[str, Any]:
        r = self.client.post(
            "/bookings",
            headers=self.world.auth("alice"),
            json={
                "parking_lot_id": self.world.lot_id,
                "vehicle_plate": "AB123",
                "vehicle_type": "car",
                "start_time": (T0 + timedelta(hours=start_h)).isoformat(),
                "end_time": (T0 + timedelta(hours=end_h)).isoformat(),
            },
        )
        assert r.status_code == 201, r.text
        return dict(r.json())


def test_reads_are_cached_and_every_change_is_seen(
    sqlite_url: str, redis_server: RedisInstance
) -> None:
    world = seed_world(sqlite_url)  # 3 car spaces
    allow_unpaid_holds(sqlite_url, world.lot_id)  # one customer books every car
    clock = Clock(T0 - timedelta(hours=1))
    provider = LocalProvider(webhook_secret=SECRET, webhook_url="/payments/webhook")
    settings = Settings(
        database_url=sqlite_url,
        hold_sweep_seconds=0,
        redis_url=redis_server.url,
        webhook_secret=SECRET,
    )
    app = create_app(settings, clock=clock, payment_provider=provider)
    r = redis.Redis.from_url(redis_server.url)
    with httpx.Client(transport=InProcessTransport(app), base_url="http://cloud.test") as client:
        provider.use_http_client(client)
        lot = Lot(client, world, r, clock)
        assert lot.free(1, 3) == 3
        assert lot.cached_answers() == 1 and lot.free(1, 3) == 3  # second read: a cache hit
        assert lot.cached_answers() == 1

        def changed(action: Any, expect: int, window: tuple[int, int] = (1, 3)) -> None:
            before = lot.generation()
            action()
            assert lot.generation() > before
            assert lot.free(*window) == expect

        booked: dict[str, Any] = {}
        changed(lambda: booked.update(lot.book(1, 2)), 2)  # booking
        changed(
            lambda: client.post(
                f"/bookings/{booked['booking_id']}/cancel", headers=world.auth("alice")
            ),
            3,
        )  # cancel
        second = lot.book(1, 2)
        assert lot.free(3, 4) == 3
        worker = OutboxWorker(app.state.sessions, outbox_handlers(provider=provider))
        worker.run_once()  # the provider knows the payment (its checkout was opened)
        ref = next(
            p.provider_ref
            for p in provider.payments.values()
            if p.booking_id == second["booking_id"]
        )
        changed(lambda: provider.complete(ref), 3, (3, 4))  # webhook confirmation
        changed(  # paid, so it may be extended
            lambda: client.post(
                f"/bookings/{second['booking_id']}/extend",
                headers=world.auth("alice"),
                json={"end_time": (T0 + timedelta(hours=4)).isoformat()},
            ),
            2,
            (3, 4),
        )  # extend
        third = lot.book(5, 6)
        assert lot.free(5, 6) == 2
        clock.advance(timedelta(hours=1))  # third's hold lapses; the sweep expires it

        def sweep() -> None:
            resp = client.post("/admin/expire-holds", headers=world.auth("admin"))
            assert resp.status_code == 200, resp.text
            assert third["booking_id"] in str(resp.json())

        changed(sweep, 3, (5, 6))  # expiry
