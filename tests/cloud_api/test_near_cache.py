"""The per-process near cache of availability answers, against a private redis-server.

First the cache alone (``NearCache`` on an event loop, real pub/sub), then the route in process,
then two real server processes sharing one PostgreSQL and one Redis: a booking through one is
seen by the very next read through the other, also while pub/sub connections are killed or
Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from cloud_api.app import create_app
from cloud_api.cache import CHANNEL, NearCache, RedisCache
from cloud_api.migrate import upgrade
from cloud_api.settings import Settings
from devservices import RedisInstance, World, free_port, running_server, seed_world, wait_for
from tests.support.cloud import T0, Clock, TestClient, allow_unpaid_holds

LOT, OTHER_LOT = 1, 2
KEY = ("/parkingLots/1/availability", b"start=a&end=b")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisInstance]:
    with RedisInstance(tmp_path / "redis") as instance:
        yield instance


@contextlib.asynccontextmanager
async def subscribed(near: NearCache) -> AsyncIterator[None]:
    """``near`` kept subscribed by its background task, as in a worker process."""
    task = asyncio.create_task(near.keep_subscribed())
    try:
        await until(lambda: near.get(KEY) is None and near.subscribed)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        near.close()


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


class Ticks:
    """A monotonic clock that moves only when told."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


def kill_pubsub_clients(url: str) -> int:
    with redis.Redis.from_url(url) as r:
        return int(r.client_kill_filter(_type="pubsub"))


def test_an_invalidation_is_applied_by_the_first_read_after_bump_returns(
    redis_server: RedisInstance,
) -> None:
    cache = RedisCache(redis_server.url)
    near = NearCache(cache.subscribe)

    async def scenario() -> None:
        async with subscribed(near):
            for i in range(200):
                near.put(KEY, LOT, near.tag(LOT), b"%d" % i)
                cache.bump({OTHER_LOT})
                assert near.get(KEY) == b"%d" % i  # another lot's change
                cache.bump({LOT, OTHER_LOT})
                assert near.get(KEY) is None, f"stale after bump {i}"

    asyncio.run(scenario())
    cache.close()


def test_a_miss_overtaken_by_an_invalidation_is_not_kept(redis_server: RedisInstance) -> None:
    cache = RedisCache(redis_server.url)
    near = NearCache(cache.subscribe)

    async def scenario() -> None:
        async with subscribed(near):
            tag = near.tag(LOT)  # the miss starts, then a booking commits and bumps
            cache.bump({LOT})
            near.put(KEY, LOT, tag, b"computed before the booking")
            assert near.get(KEY) is None
            tag = near.tag(LOT)
            cache.bump({LOT})
            assert near.get(("another", b"query")) is None  # drains the invalidation
            near.put(KEY, LOT, tag, b"computed before the booking")
            assert len(near) == 0
            near.put(KEY, LOT, near.tag(LOT), b"fresh")
            assert near.get(KEY) == b"fresh"

    asyncio.run(scenario())
    cache.close()


def test_a_lost_subscription_voids_everything_until_resubscribed(
    redis_server: RedisInstance,
) -> None:
    cache = RedisCache(redis_server.url)
    near = NearCache(cache.subscribe)

    async def scenario() -> None:
        async with subscribed(near):
            near.put(KEY, LOT, near.tag(LOT), b"before")
            in_flight = near.tag(LOT)  # a miss running across the loss
            assert kill_pubsub_clients(redis_server.url) == 1
            cache.bump({LOT})  # published to nobody
            assert near.get(KEY) is None and not near.subscribed
            assert near.tag(LOT) is None
            near.put(KEY, LOT, in_flight, b"stale")
            assert len(near) == 0
            await until(lambda: near.get(KEY) is None and near.subscribed)  # resubscribed at once
            near.put(KEY, LOT, in_flight, b"stale")  # same counts, but an older epoch
            assert near.get(KEY) is None
            near.put(KEY, LOT, near.tag(LOT), b"after")
            assert near.get(KEY) == b"after"
            cache.bump({LOT})
            assert near.get(KEY) is None

    asyncio.run(scenario())
    cache.close()


def test_an_unanswered_ping_turns_the_near_cache_off(redis_server: RedisInstance) -> None:
    cache = RedisCache(redis_server.url)
    near = NearCache(cache.subscribe, poll_seconds=0.05)

    async def scenario() -> None:
        async with subscribed(near):
            near.put(KEY, LOT, near.tag(LOT), b"body")
            with redis.Redis.from_url(redis_server.url) as r:
                r.execute_command("CLIENT", "PAUSE", "1500", "ALL")  # PINGs go unanswered
            await until(lambda: not near.subscribed, timeout=1.2)
            assert near.get(KEY) is None
            await until(lambda: near.get(KEY) is None and near.subscribed)  # pause over

    asyncio.run(scenario())
    cache.close()


def test_redis_down_leaves_the_near_cache_off_until_it_is_back(
    redis_server: RedisInstance,
) -> None:
    cache = RedisCache(redis_server.url)
    near = NearCache(cache.subscribe, poll_seconds=0.05)

    async def scenario() -> None:
        async with subscribed(near):
            near.put(KEY, LOT, near.tag(LOT), b"body")
            redis_server.stop()
            assert near.get(KEY) is None and not near.subscribed
            for _ in range(5):  # reconnect attempts fail quietly
                await asyncio.sleep(0.05)
                assert near.tag(LOT) is None and near.get(KEY) is None
            redis_server.start()
            await until(lambda: near.get(KEY) is None and near.subscribed)
            near.put(KEY, LOT, near.tag(LOT), b"body")
            assert near.get(KEY) == b"body"

    asyncio.run(scenario())
    cache.close()


def test_without_redis_the_near_cache_never_serves() -> None:
    dead = RedisCache(f"redis://127.0.0.1:{free_port()}/0")
    for near in (NearCache(None), NearCache(dead.subscribe, poll_seconds=0.01)):

        async def scenario(near: NearCache = near) -> None:
            task = asyncio.create_task(near.keep_subscribed())
            await asyncio.sleep(0.05)  # a few failed attempts
            near.put(KEY, LOT, near.tag(LOT), b"body")
            assert near.get(KEY) is None and not near.subscribed
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.run(scenario())


def test_entries_are_bounded_and_expire(redis_server: RedisInstance) -> None:
    cache = RedisCache(redis_server.url)
    clock = Ticks()
    near = NearCache(cache.subscribe, max_entries=3, max_age=10.0, clock=clock)

    def keys(n: int) -> list[tuple[str, bytes]]:
        return [("/parkingLots/1/availability", b"q=%d" % i) for i in range(n)]

    async def scenario() -> None:
        async with subscribed(near):
            for key in keys(3):
                near.put(key, LOT, near.tag(LOT), key[1])
            assert near.get(keys(1)[0]) == b"q=0"  # now the most recently used
            near.put(("/parkingLots/1/availability", b"q=3"), LOT, near.tag(LOT), b"q=3")
            assert len(near) == 3 and near.get(keys(2)[1]) is None  # least recently used
            clock.now += 9.5
            assert near.get(keys(1)[0]) == b"q=0"
            clock.now += 1
            assert near.get(keys(1)[0]) is None

    asyncio.run(scenario())
    cache.close()


def test_an_unreadable_message_empties_the_near_cache(redis_server: RedisInstance) -> None:
    cache = RedisCache(redis_server.url)
    near = NearCache(cache.subscribe)

    async def scenario() -> None:
        async with subscribed(near):
            near.put(KEY, LOT, near.tag(LOT), b"body")
            with redis.Redis.from_url(redis_server.url) as r:
                r.publish(CHANNEL, "not lot ids")
            assert near.get(KEY) is None and near.subscribed
            near.put(KEY, LOT, near.tag(LOT), b"body")
            assert near.get(KEY) == b"body"

    asyncio.run(scenario())
    cache.close()


# --- the route, in process ---------------------------------------------------------------


def test_near_hits_are_the_computed_answer_and_bad_input_is_still_refused(
    sqlite_url: str, world: World, redis_server: RedisInstance
) -> None:
    settings = Settings(database_url=sqlite_url, hold_sweep_seconds=0, redis_url=redis_server.url)
    app = create_app(settings, clock=Clock(T0))
    path = f"/parkingLots/{world.lot_id}/availability"
    params = {"start": "2030-06-01T11:00:00+02:00", "end": "2030-06-01T12:30:00Z"}
    with TestClient(app, client=("127.0.0.1", 50000)) as client:  # a local scraper
        computed = client.get(path, params=params)
        assert computed.status_code == 200 and computed.headers["x-cache"] == "db"
        assert computed.json()["start_time"] == "2030-06-01T09:00:00Z"

        reads = [computed]

        def near_hit() -> httpx.Response | None:
            reads.append(client.get(path, params=params))
            return reads[-1] if reads[-1].headers["x-cache"] == "near" else None

        hit = wait_for(near_hit, what="a near cache hit")
        assert isinstance(hit, httpx.Response)
        assert hit.content == computed.content
        assert {k: v for k, v in hit.headers.items() if k != "x-cache"} == {
            k: v for k, v in computed.headers.items() if k != "x-cache"
        }
        metrics = client.get("/metrics").text  # hits are counted under the route, like misses
        counted = (
            'parkgate_http_request_seconds_count{method="GET",'
            'route="/parkingLots/{lot_id}/availability",status="200"} '
        )
        assert f"{counted}{float(len(reads))}" in metrics
        refused = {
            "start=x&end=y": (422, "invalid_request"),
            "start=2030-06-01T11:00:00Z&end=2030-06-01T10:00:00Z": (422, "end_before_start"),
            "start=2030-06-01T09:00:00&end=2030-06-01T10:00:00Z": (422, "invalid_request"),
            "start=2030-06-01T09:00:00Z&end=2030-06-01T10:00:00Z&vehicle_type=bus": (
                422,
                "invalid_request",
            ),
        }
        for query, (status, reason) in refused.items():
            for _ in range(2):
                r = client.get(f"{path}?{query}")
                assert (r.status_code, r.json()["reason"]) == (status, reason), query
        for missing in ("/parkingLots/999/availability", "/parkingLots/0/availability"):
            for _ in range(2):
                r = client.get(missing, params=params)
                assert r.status_code in (404, 422) and "x-cache" not in r.headers
        assert len(app.state.near_cache) == 1


# --- two server processes ----------------------------------------------------------------


class Server:
    """One server process through one keep-alive connection, reading one window of cars."""

    def __init__(self, base: str, world: World, start: datetime) -> None:
        self.client = httpx.Client(base_url=base, timeout=10)
        self.world, self.start = world, start

    def read(self) -> tuple[int, str]:
        r = self.client.get(
            f"/parkingLots/{self.world.lot_id}/availability",
            params={
                "start": self.start.isoformat(),
                "end": (self.start + timedelta(hours=2)).isoformat(),
                "vehicle_type": "car",
            },
        )
        assert r.status_code == 200, r.text
        return int(r.json()["vehicle_types"][0]["free_spaces"]), r.headers["x-cache"]

    def warm(self, free: int) -> None:
        """Wait until this process answers ``free`` from its near cache."""
        wait_for(lambda: self.read() == (free, "near"), what=f"near cache hit with {free} free")

    def book(self, i: int) -> None:
        r = self.client.post(
            "/bookings",
            headers=self.world.auth("alice"),
            json={
                "parking_lot_id": self.world.lot_id,
                "vehicle_plate": f"NC{i}",
                "vehicle_type": "car",
                "start_time": (self.start + timedelta(minutes=30)).isoformat(),
                "end_time": (self.start + timedelta(hours=1)).isoformat(),
            },
        )
        assert r.status_code == 201, r.text


SPACES = 40


@pytest.fixture
def servers(postgres_db: str, redis_server: RedisInstance) -> Iterator[tuple[Server, Server]]:
    upgrade(postgres_db)
    world = seed_world(postgres_db, {"car": SPACES})
    allow_unpaid_holds(postgres_db, world.lot_id)  # one customer books every car
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    with (
        running_server(postgres_db, redis_url=redis_server.url) as one,
        running_server(postgres_db, redis_url=redis_server.url) as other,
    ):
        a, b = Server(one, world, start), Server(other, world, start)
        yield a, b
        a.client.close()
        b.client.close()


@pytest.mark.integration
def test_a_booking_through_one_process_is_seen_by_the_next_read_through_the_other(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    free = SPACES
    for i in range(30):
        writer, reader = (a, b) if i % 2 == 0 else (b, a)
        reader.warm(free)
        writer.book(i)
        free -= 1
        assert reader.read() == (free, "db"), f"booking {i}"
        assert writer.read()[0] == free


@pytest.mark.integration
def test_killed_pubsub_connections_never_let_a_stale_answer_through(
    servers: tuple[Server, Server], redis_server: RedisInstance
) -> None:
    a, b = servers
    free = SPACES
    for i in range(5):  # killed right before the booking; the near cache comes back each time
        b.warm(free)  # so b is subscribed; a may still be resubscribing after the last kill
        assert kill_pubsub_clients(redis_server.url) >= 1
        a.book(i)
        free -= 1
        assert b.read()[0] == free, f"booking {i}"
    stop = threading.Event()

    def keep_killing() -> None:
        while not stop.wait(0.02):
            kill_pubsub_clients(redis_server.url)

    killer = threading.Thread(target=keep_killing)
    killer.start()
    try:
        for i in range(5, 35):
            for _ in range(3):
                assert b.read()[0] == free and a.read()[0] == free
            (a if i % 2 else b).book(i)
            free -= 1
            assert b.read()[0] == free and a.read()[0] == free, f"booking {i}"
    finally:
        stop.set()
        killer.join()
    b.warm(free)


@pytest.mark.integration
def test_with_redis_down_answers_come_from_the_database(
    servers: tuple[Server, Server], redis_server: RedisInstance
) -> None:
    a, b = servers
    free = SPACES
    b.warm(free)
    redis_server.stop()
    for i in range(3):
        a.book(i)  # the generation bump fails; the booking does not
        free -= 1
        assert b.read() == (free, "db") and a.read() == (free, "db")
    redis_server.start()  # empty: generations start again from 0, no answer cached
    b.warm(free)
    a.book(3)
    free -= 1
    assert b.read() == (free, "db")
