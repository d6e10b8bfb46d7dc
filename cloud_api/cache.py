"""Optional availability cache: Redis under per-lot generations, and a near cache per process.

**Redis.** Answers (the response body, JSON bytes) are cached under
``avail:{lot}:{generation}:body:{query}`` (``body``: the earlier version's entries, decoded
dicts, are never served as bodies during a rolling deploy). Every committed change to a lot's
reservations (detected as a new ``lot_changes`` row in the session) increments the lot's
generation in Redis right after the commit, so later reads never see an answer computed before
the change: a reader reads the generation *before* it queries the database. Old generations
simply expire (TTL). A Redis failure degrades to the database.

**Near cache** (:class:`NearCache`, one per worker process, event-loop thread only). The same
bump also PUBLISHes the lot ids on :data:`CHANNEL` (same round trip, after the commit). Every
worker process holds a subscription; before answering from its near cache it drains, without
blocking, the invalidations already received. Redis writes a published message to the
subscribers' sockets when it executes PUBLISH, before the publisher gets its reply and so before
the booking's 201 leaves the API: a client that got the 201 and then reads from any worker finds
the invalidation in that worker's socket buffer. Each entry carries the tag ``(epoch, bumps seen
for its lot)`` taken before the miss read Redis and the database; an invalidation that arrives
meanwhile changes the tag, so the answer is not kept. The epoch moves on with every pub/sub loss
or (re)subscription, which empties the near cache; while not subscribed, reads take the Redis
path. Entries are bounded in number (LRU) and age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.changes import INFO_CHANGED_LOTS
from cloud_api.models import LotChange

__all__ = ["CHANNEL", "AvailabilityCache", "NearCache", "NoCache", "RedisCache", "bump_on_commit"]

log = logging.getLogger(__name__)
TTL_SECONDS = 300
CHANNEL = "avail:bumped"  # message: the bumped lot ids, comma-separated


class AvailabilityCache(Protocol):
    def lookup(self, lot_id: int, query: str) -> tuple[str | None, bytes | None]:
        """The key for this query at the lot's current generation, and the cached body."""
        ...

    def store(self, key: str, body: bytes) -> None: ...
    def bump(self, lot_ids: set[int]) -> None: ...


class NoCache:
    def lookup(self, lot_id: int, query: str) -> tuple[str | None, bytes | None]:
        return None, None

    def store(self, key: str, body: bytes) -> None:
        return None

    def bump(self, lot_ids: set[int]) -> None:
        return None


class RedisCache:
    def __init__(self, url: str) -> None:
        import redis

        self._url = url
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._errors = (redis.RedisError, OSError)

    def lookup(self, lot_id: int, query: str) -> tuple[str | None, bytes | None]:
        """Read the generation *before* the caller queries the database (see module doc)."""
        try:
            gen = self._redis.get(f"avail:gen:{lot_id}")
            key = f"avail:{lot_id}:{int(gen or 0)}:body:{query}"
            raw = self._redis.get(key)
        except self._errors as exc:
            log.warning("redis read failed: %s", exc)
            return None, None
        return key, (raw if isinstance(raw, bytes) and raw else None)

    def store(self, key: str, body: bytes) -> None:
        try:
            self._redis.set(key, body, ex=TTL_SECONDS)
        except self._errors as exc:
            log.warning("redis write failed: %s", exc)

    def bump(self, lot_ids: set[int]) -> None:
        """New generations for the lots and one message to every near cache, one round trip."""
        try:
            pipe = self._redis.pipeline()
            for lot_id in lot_ids:
                pipe.incr(f"avail:gen:{lot_id}")
            pipe.publish(CHANNEL, ",".join(str(lot_id) for lot_id in sorted(lot_ids)))
            pipe.execute()
        except self._errors as exc:
            log.error("redis generation bump failed for lots %s: %s", sorted(lot_ids), exc)

    def subscribe(self) -> Any:
        """A new pub/sub connection with SUBSCRIBE sent (blocking: call it in a thread).

        redis-py would reconnect and resubscribe silently, losing the messages published in
        between; with no retryable errors every failure reaches :class:`NearCache`.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            self._url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0, supported_errors=()),
        )
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(CHANNEL)
        except BaseException:
            pubsub.close()
            raise
        return pubsub

    def close(self) -> None:
        self._redis.close()


Tag = tuple[int, int]


class _Entry:
    __slots__ = ("body", "lot_id", "stored_at", "tag")

    def __init__(self, lot_id: int, tag: Tag, stored_at: float, body: bytes) -> None:
        self.lot_id, self.tag, self.stored_at, self.body = lot_id, tag, stored_at, body


class NearCache:
    """Response bodies of one lot's queries in this process, invalidated through Redis pub/sub.

    The caller chooses the keys (the route: path and query string of a validated request).

    Not thread-safe by design: every method runs on the event loop (the route's hit path and
    ``put`` after the threadpool hop, and :meth:`keep_subscribed`). ``subscribe=None``: never on.
    """

    def __init__(
        self,
        subscribe: Callable[[], Any] | None,
        *,
        max_entries: int = 4096,
        max_age: float = 10.0,
        poll_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._subscribe = subscribe
        self._max_entries, self._max_age, self._poll = max_entries, max_age, poll_seconds
        self._clock = clock
        self._errors: tuple[type[Exception], ...] = (OSError,)
        if subscribe is not None:
            import redis

            self._errors = (redis.RedisError, OSError)
        self._pubsub: Any = None  # redis PubSub; None until (re)connected
        self._subscribed = False  # SUBSCRIBE confirmed on the current connection
        self._awaiting: float | None = None  # since when a SUBSCRIBE or PING is unanswered
        self._epoch = 0  # moves on with every loss and (re)subscription
        self._bumps: dict[int, int] = {}  # invalidations received per lot in this epoch
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lost: asyncio.Event | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    def get(self, key: Hashable) -> bytes | None:
        """The stored body, if subscribed and nothing invalidated it (received messages first)."""
        if not self._drain():
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.tag != (self._epoch, self._bumps.get(entry.lot_id, 0)) or (
            self._clock() - entry.stored_at > self._max_age
        ):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.body

    def tag(self, lot_id: int) -> Tag | None:
        """Take before a miss reads Redis or the database; ``None`` while not subscribed."""
        return (self._epoch, self._bumps.get(lot_id, 0)) if self._subscribed else None

    def put(self, key: Hashable, lot_id: int, tag: Tag | None, body: bytes) -> None:
        """Keep a miss's answer unless an invalidation or a loss came after ``tag`` was taken."""
        if tag is None or tag != self.tag(lot_id):
            return
        self._entries[key] = _Entry(lot_id, tag, self._clock(), body)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    async def keep_subscribed(self) -> None:
        """Run for the process's life: (re)subscribe, drain and PING every ``poll_seconds``.

        Draining periodically keeps Redis from disconnecting an idle worker as a slow consumer;
        the PING detects a dead connection that never reported an error. A loss seen by a
        request wakes this loop at once to resubscribe.
        """
        if self._subscribe is None:
            return
        self._lost = asyncio.Event()
        while True:
            self._lost.clear()
            if self._pubsub is None:
                await self._connect()
            else:
                self._drain()
                self._ping()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._poll)

    def close(self) -> None:
        self._drop(self._pubsub)
        self._pubsub, self._subscribed = None, False
        self._entries.clear()

    async def _connect(self) -> None:
        assert self._subscribe is not None
        try:
            pubsub = await asyncio.to_thread(self._subscribe)
        except self._errors as exc:
            log.debug("availability near cache: subscribe failed: %s", exc)
            return
        self._pubsub, self._awaiting = pubsub, self._clock()

    def _drain(self) -> bool:
        """Apply every message already received, without blocking; whether entries are valid."""
        pubsub = self._pubsub
        if pubsub is None:
            return False
        try:
            while self._pubsub is pubsub and (message := pubsub.get_message(timeout=0)):
                self._apply(message)  # may lose the connection (then the loop ends)
        except self._errors as exc:
            self._lose(f"pub/sub connection failed: {exc}")
        return self._subscribed

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            try:
                lot_ids = [int(x) for x in bytes(message["data"]).split(b",")]
            except ValueError:
                log.warning("unreadable invalidation %r: near cache emptied", message["data"])
                self._new_epoch()
                return
            for lot_id in lot_ids:
                self._bumps[lot_id] = self._bumps.get(lot_id, 0) + 1
        elif kind == "subscribe":
            self._new_epoch()
            self._subscribed, self._awaiting = True, None
            log.info("availability near cache on (subscribed to %s)", CHANNEL)
        elif kind == "pong":
            self._awaiting = None
        else:
            self._lose(f"unexpected pub/sub message {kind}")

    def _ping(self) -> None:
        """PING when the last one was answered (drained just before); lose after 3 polls."""
        if self._pubsub is None:
            return
        if self._awaiting is not None:
            if self._clock() - self._awaiting > 3 * self._poll:
                self._lose("no answer from Redis on the pub/sub connection")
            return
        try:
            self._pubsub.ping()
        except self._errors as exc:
            self._lose(f"pub/sub ping failed: {exc}")
            return
        self._awaiting = self._clock()

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._bumps.clear()
        self._entries.clear()

    def _lose(self, why: str) -> None:
        """Off until resubscribed: every entry and in-flight miss is void (messages were lost)."""
        if self._subscribed:
            log.warning("availability near cache off until resubscribed: %s", why)
        self._drop(self._pubsub)
        self._pubsub, self._subscribed, self._awaiting = None, False, None
        self._new_epoch()
        if self._lost is not None:
            self._lost.set()

    def _drop(self, pubsub: Any) -> None:
        if pubsub is not None:
            with contextlib.suppress(*self._errors):
                pubsub.close()


def bump_on_commit(sessions: sessionmaker[Session], cache: AvailabilityCache) -> None:
    """After every commit that wrote ``lot_changes``, bump those lots' generations."""

    @event.listens_for(sessions, "after_flush")
    def _collect(session: Session, _ctx: Any) -> None:
        lots = {obj.lot_id for obj in session.new if isinstance(obj, LotChange)}
        if lots:
            session.info.setdefault(INFO_CHANGED_LOTS, set()).update(lots)

    @event.listens_for(sessions, "after_commit")
    def _bump(session: Session) -> None:
        lots = session.info.pop(INFO_CHANGED_LOTS, None)
        if lots:
            cache.bump(lots)

    @event.listens_for(sessions, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop(INFO_CHANGED_LOTS, None)
