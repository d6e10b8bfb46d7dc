"""Remote commands end to end: API → relay → broker → agent. An open that expired before the relay
could send it is never published; a live one is executed once (audited) even when redelivered."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cloud_api.lot_sync import LotCommand, issue_open
from cloud_api.models import Role, utcnow
from cloud_api.seed import add_user
from devservices import CloudStack, wait_for
from gate_agent.config import SyncConfig
from gate_agent.store import Store
from gate_agent.sync import COMMANDS_STATE_KEY, SyncClient
from tests.support.sync import FakeLane

pytestmark = pytest.mark.integration


def test_remote_open_runs_once_audited_and_an_expired_one_is_never_sent(
    tmp_path: Path, stack: CloudStack, lot_id: int
) -> None:
    with stack.sessions() as s:
        operator = add_user(s, "op@example.test", Role.OPERATOR, lots=(lot_id,)).token
        s.commit()
    auth = {"Authorization": f"Bearer {operator}"}
    store = Store(tmp_path / "agent.sqlite3")
    lane = FakeLane(store)
    config = SyncConfig(**stack.agent_sync(lot_id))
    lanes = {lane.lane_id: lane}
    sync = SyncClient(config, lot_id=str(lot_id), store=store, data_dir=tmp_path, lanes=lanes)
    sync.start()

    def handled() -> list[str]:
        return list(store.get_state(COMMANDS_STATE_KEY, []))

    def issue(kind: str, body: dict[str, object]) -> str:
        r = stack.http.post(f"/lots/{lot_id}/commands/{kind}", json=body, headers=auth)
        assert r.status_code == 202, r.text
        return str(r.json()["command_id"])

    try:
        wait_for(lambda: sync.status.subscribed, timeout=10, what="agent connected")
        with stack.sessions() as s:  # issued two minutes ago with a 60 s life: already expired
            late = utcnow() - timedelta(minutes=2)
            stale = issue_open(
                s, lot_id, lane_id=lane.lane_id, actor="op@example.test", reason="late", now=late
            ).command_id
            s.commit()
        wait_for(lambda: stack.relay.stats.expired_commands == 1, what="relay drops it")

        live = issue("open", {"lane_id": lane.lane_id, "reason": "pay station broken"})
        wait_for(lambda: live in handled(), what="agent handled the open")
        # the id is remembered before the lane opens (a redelivery never opens twice): wait for
        # the open itself, not only its bookkeeping
        wait_for(lambda: lane.opened, what="the lane opened")
        assert lane.opened == [("remote:op@example.test", "pay station broken")]

        with stack.sessions() as s:  # make the relay publish the same command again
            command = s.get(LotCommand, live)
            assert command is not None and command.published_at is not None
            command.published_at = None
            s.commit()
        stack.relay.wake()
        marker = issue("resync", {"full": False})  # commands are handled in arrival order
        wait_for(lambda: marker in handled(), timeout=10, what="the redelivery and a resync")
        wait_for(lambda: stack.relay.stats.commands >= 3, what="the open was sent twice")
    finally:
        sync.stop()
    assert lane.opened == [("remote:op@example.test", "pay station broken")]  # once
    assert stale not in handled()
    audit = [(a.actor, a.action) for a in store.audit_log()]
    assert audit.count(("remote:op@example.test", "manual_open")) == 1
    assert not [a for a in audit if a[1] == "remote_open_refused"]  # it never arrived at all
    with stack.sessions() as s:
        expired = s.get(LotCommand, stale)
        assert expired is not None and expired.outcome == "expired"
    store.close()
