"""Optional Redis availability cache, kept consistent by generation numbers.

Availability answers are cached under ``avail:{lot}:{generation}:{query}``. Every committed change
to a lot's reservations (detected as a new ``lot_changes`` row in the session) increments the lot's
generation in Redis right after the commit, so later reads never see an answer computed before
the change. Old generations simply expire (TTL). A Redis failure degrades to the database.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.models import LotChange

__all__ = ["AvailabilityCache", "NoCache", "RedisCache", "bump_on_commit"]

log = logging.getLogger(__name__)
TTL_SECONDS = 300


class AvailabilityCache(Protocol):
    def lookup(self, lot_id: int, query: str) -> tuple[str | None, dict[str, Any] | None]:
        """The key for this query at the lot's current generation, and the cached value."""
        ...

    def store(self, key: str, value: dict[str, Any]) -> None: ...
    def bump(self, lot_ids: set[int]) -> None: ...


class NoCache:
    def lookup(self, lot_id: int, query: str) -> tuple[str | None, dict[str, Any] | None]:
        return None, None

    def store(self, key: str, value: dict[str, Any]) -> None:
        return None

    def bump(self, lot_ids: set[int]) -> None:
        return None


class RedisCache:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._errors = (redis.RedisError, OSError)

    def lookup(self, lot_id: int, query: str) -> tuple[str | None, dict[str, Any] | None]:
        """Read the generation *before* the caller queries the database (see module doc)."""
        try:
            gen = self._redis.get(f"avail:gen:{lot_id}")
            key = f"avail:{lot_id}:{int(gen or 0)}:{query}"
            raw = self._redis.get(key)
        except self._errors as exc:
            log.warning("redis read failed: %s", exc)
            return None, None
        return key, (json.loads(raw) if raw else None)

    def store(self, key: str, value: dict[str, Any]) -> None:
        try:
            self._redis.set(key, json.dumps(value), ex=TTL_SECONDS)
        except self._errors as exc:
            log.warning("redis write failed: %s", exc)

    def bump(self, lot_ids: set[int]) -> None:
        try:
            pipe = self._redis.pipeline()
            for lot_id in lot_ids:
                pipe.incr(f"avail:gen:{lot_id}")
            pipe.execute()
        except self._errors as exc:
            log.error("redis generation bump failed for lots %s: %s", sorted(lot_ids), exc)

    def close(self) -> None:
        self._redis.close()


def bump_on_commit(sessions: sessionmaker[Session], cache: AvailabilityCache) -> None:
    """After every commit that wrote ``lot_changes``, bump those lots' generations."""

    @event.listens_for(sessions, "after_flush")
    def _collect(session: Session, _ctx: Any) -> None:
        lots = {obj.lot_id for obj in session.new if isinstance(obj, LotChange)}
        if lots:
            session.info.setdefault("changed_lots", set()).update(lots)

    @event.listens_for(sessions, "after_commit")
    def _bump(session: Session) -> None:
        lots = session.info.pop("changed_lots", None)
        if lots:
            cache.bump(lots)

    @event.listens_for(sessions, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop("changed_lots", None)
