"""Cloud API test doubles: a controllable clock and the in-process ``TestClient``."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

with warnings.catch_warnings():
    # starlette 1.x prefers httpx2 (not installed); httpx 0.28 still works for TestClient
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["T0", "Clock", "TestClient", "soon"]

T0 = datetime(2030, 6, 1, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def soon(minutes: int = 5) -> datetime:
    """A booking start ``minutes`` from the real now (for tests against a running stack)."""
    return datetime.now(UTC) + timedelta(minutes=minutes)


def allow_unpaid_holds(database_url: str, lot_id: int, holds: int = 100) -> None:
    """Let one customer hold up to ``holds`` unpaid bookings at the lot (the policy's
    ``max_unpaid_holds``, 3 by default): for tests that book many cars as one customer."""
    from cloud_api.db import make_engine, make_sessionmaker
    from cloud_api.policies import current_policy, set_policy

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            fields = {**current_policy(s, lot_id).to_wire(), "max_unpaid_holds": holds}
            fields.pop("version", None)
            set_policy(s, lot_id, fields, actor=None, now=datetime.now(UTC))
    finally:
        engine.dispose()
