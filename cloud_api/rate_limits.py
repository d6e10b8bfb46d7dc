"""Rate limits shared by every API worker and process, counted in the database.

A limit allows at most ``limit`` hits per key in any ``window``. Hits are counted in buckets of
a sixth of the window; a hit is allowed when the buckets that overlap the last ``window`` hold
no more than ``limit`` hits with it (so a hit up to a bucket older than the window still counts:
the limit is never exceeded, and a client waits at most a bucket longer than the window). A hit
is an upsert of the current bucket, the sum of the recent buckets, and, when refused, the hit
taken back (refusals do not count, so a client that stops hammering is served again once its
allowed hits age out), committed at once in the request's own session (a second connection
would wait on SQLite's write lock that session may hold): whatever the request then does, a
failing request cannot roll its hit back. So a route counts a hit before it writes anything.
On PostgreSQL, concurrent hits of one key queue on the bucket's row (the upsert's lock, held to
the commit), and each sums after the one before it committed; on SQLite every transaction is
``BEGIN IMMEDIATE``.

Used by pay by plate (public): per client address and per lot, so enumerating plates is slow
however many workers serve it. :func:`prune` (a periodic job) deletes buckets that no longer
count.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cloud_api.models import RateHit

__all__ = ["RATE_WINDOW", "SharedRateLimit", "prune"]

log = logging.getLogger(__name__)

RATE_WINDOW = timedelta(minutes=1)  # the longest window a limit here uses
MAX_KEY = 160  # the column's width; longer keys are cut (an address or a lot id never is)


class SharedRateLimit:
    """At most ``limit`` hits per key in any ``window``, for every process at once."""

    BUCKETS = 6  # per window

    def __init__(
        self,
        name: str,
        limit: int,
        window: timedelta = RATE_WINDOW,
    ) -> None:
        if limit < 1 or window.total_seconds() < self.BUCKETS:
            raise ValueError(f"a rate limit needs limit >= 1 and a window of {self.BUCKETS}+ s")
        self._name = name
        self.limit = limit
        self._window_s = int(window.total_seconds())
        self._bucket_s = self._window_s // self.BUCKETS

    def allow(self, session: Session, key: str, now: datetime) -> bool:
        """Count a hit for ``key`` at ``now`` and commit ``session`` (so call this before the
        request writes anything); False (the hit not counted) when it would go over."""
        full_key = f"{self._name}:{key}"[:MAX_KEY]
        bucket = int(now.timestamp()) // self._bucket_s * self._bucket_s
        oldest = bucket - self._window_s  # the bucket that holds now - window still counts
        try:
            _count_hit(session, full_key, bucket)
            recent = session.scalar(
                select(func.coalesce(func.sum(RateHit.hits), 0)).where(
                    RateHit.key == full_key, RateHit.bucket >= oldest
                )
            )
            allowed = int(recent or 0) <= self.limit
            if not allowed:
                session.execute(
                    update(RateHit)
                    .where(RateHit.key == full_key, RateHit.bucket == bucket)
                    .values(hits=RateHit.hits - 1)
                )
            session.commit()
        except BaseException:
            session.rollback()
            raise
        if not allowed:
            log.info("rate limit %s refused a hit", self._name)  # never the key: an address
        return allowed


def _count_hit(session: Session, key: str, bucket: int) -> None:
    """Add one hit to (``key``, ``bucket``) in one statement."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(RateHit)
        .values(key=key, bucket=bucket, hits=1)
        .on_conflict_do_update(
            index_elements=[RateHit.key, RateHit.bucket], set_={"hits": RateHit.hits + 1}
        )
    )


def prune(session: Session, now: datetime, longest_window: timedelta) -> int:
    """Delete buckets older than twice ``longest_window`` (they no longer count for any limit
    whose window is at most that long); returns how many."""
    horizon = int((now - 2 * longest_window).timestamp())
    result = session.execute(delete(RateHit).where(RateHit.bucket < horizon))
    return int(getattr(result, "rowcount", 0) or 0)
