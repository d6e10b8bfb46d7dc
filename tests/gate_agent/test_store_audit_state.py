from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from gate_agent.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:", clock=lambda: NOW) as s:
        yield s


def test_audit_newest_first(store: Store) -> None:
    first = store.audit("bob", "manual_open", "ticket machine broken", lane_id="in1")
    second = store.audit("eve", "manual_open", "ambulance", detail={"frame": "f.jpg"})
    log = store.audit_log()
    assert [e.id for e in log] == [second, first]
    assert (log[0].detail, log[1].lane_id) == ({"frame": "f.jpg"}, "in1")
    assert len(store.audit_log(limit=1)) == 1


@pytest.mark.parametrize(("actor", "reason"), [("", "why"), ("bob", "")])
def test_audit_needs_actor_and_reason(store: Store, actor: str, reason: str) -> None:
    with pytest.raises(ValueError, match="actor and a reason"):
        store.audit(actor, "manual_open", reason)
    assert store.audit_log() == []


def test_state_round_trips_json(store: Store) -> None:
    assert store.get_state("last_sequence") is None
    assert store.get_state("last_sequence", 0) == 0
    store.set_state("last_sequence", 41)
    store.set_state("last_sequence", 42)
    store.set_state("catch_up", {"at": "2026-03-02T12:00:00+00:00", "ok": True})
    assert store.get_state("last_sequence") == 42
    assert store.get_state("catch_up") == {"at": "2026-03-02T12:00:00+00:00", "ok": True}
