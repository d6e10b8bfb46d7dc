"""Store: operator sessions (revoked, expired, pruned) and login attempt counters (one upsert,
windowed, pruned)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gate_agent.store import Store

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Store:
    return Store(":memory:", clock=clock)


def rows(store: Store, table: str) -> int:
    with store._db.read() as conn:  # the test looks at the table itself: pruning is invisible
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_sessions_live_until_revoked_or_expired_and_expired_ones_are_pruned(
    store: Store, clock: Clock
) -> None:
    store.open_operator_session("a" * 64, "alice", T0 + timedelta(hours=1))
    store.open_operator_session("b" * 64, "bob", T0 + timedelta(hours=12))
    assert store.operator_session("a" * 64) == "alice"
    assert store.operator_session("c" * 64) is None
    assert store.close_operator_session("b" * 64) and not store.close_operator_session("b" * 64)
    assert store.operator_session("b" * 64) is None
    clock.now = T0 + timedelta(hours=1)
    assert store.operator_session("a" * 64) is None  # expired
    store.open_operator_session("d" * 64, "alice", T0 + timedelta(hours=13))
    assert rows(store, "web_sessions") == 1  # the expired one went with the next login


def test_attempts_count_per_user_and_address_in_a_window(store: Store, clock: Clock) -> None:
    for n in (1, 2, 3):
        assert store.count_login_attempt("alice", "10.0.0.9", WINDOW) == (n, WINDOW)
    assert store.count_login_attempt("alice", "10.0.0.8", WINDOW)[0] == 1
    assert store.count_login_attempt("bob", "10.0.0.9", WINDOW)[0] == 1
    clock.now = T0 + timedelta(minutes=2)
    assert store.count_login_attempt("alice", "10.0.0.9", WINDOW) == (4, timedelta(minutes=3))
    store.clear_login_attempts("alice", "10.0.0.9")
    assert store.count_login_attempt("alice", "10.0.0.9", WINDOW) == (1, WINDOW)


def test_counters_of_past_windows_are_pruned(store: Store, clock: Clock) -> None:
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        store.count_login_attempt(f"user-{address}", address, WINDOW)
    assert rows(store, "login_attempts") == 3
    clock.now = T0 + WINDOW
    assert store.count_login_attempt("user-10.0.0.1", "10.0.0.1", WINDOW) == (1, WINDOW)
    assert rows(store, "login_attempts") == 1
