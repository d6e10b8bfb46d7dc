"""Chaos: 1,000 events while the agent is SIGKILLed and restarted at random points and the broker
is restarted twice → every journaled event id is in the cloud exactly once."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack import ROOT, CloudStack
from tests.support.services import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.xfail(
        reason="open: first runs stored 980 of 1,000 (events lost around broker restarts; "
        "suspect broker-side queue of the ingest's shared subscription)",
        strict=False,
    ),
]

TOTAL = 1000


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[CloudStack]:
    cloud = CloudStack(tmp_path / "cloud").start()
    yield cloud
    cloud.stop()


def journaled(data_dir: Path) -> set[str]:
    db = data_dir / "agent.sqlite3"
    if not db.exists():
        return set()
    with sqlite3.connect(db, timeout=10) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


def test_every_event_once_through_kills_and_broker_restarts(
    tmp_path: Path, stack: CloudStack
) -> None:
    rng = random.Random(4)
    lot_id = stack.lot_ids[0]
    data_dir = tmp_path / "agent"
    data_dir.mkdir()
    cmd = [sys.executable, "-m", "tests.integration.chaos_agent", str(data_dir), str(lot_id),
           json.dumps(stack.agent_sync(lot_id)), str(TOTAL), "0.02"]  # fmt: skip

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip

    agent = spawn()
    kills = broker_restarts = 0
    try:
        while len(journaled(data_dir)) < TOTAL:
            time.sleep(rng.uniform(0.5, 2.5))
            if broker_restarts < 2 and kills in (1, 3) and broker_restarts < kills:
                stack.broker.restart()
                broker_restarts += 1
            agent.send_signal(signal.SIGKILL)
            agent.wait()
            kills += 1
            agent = spawn()
        while broker_restarts < 2:
            stack.broker.restart()
            broker_restarts += 1
        wanted = journaled(data_dir)
        print("journaled", len(wanted), "stored", stack.event_count(), flush=True)
        wait_for(lambda: stack.event_count() >= len(wanted), timeout=30, interval=0.2,
                 what="all events in the cloud")  # fmt: skip
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    stored = stack.event_ids()
    print(f"chaos: {kills} SIGKILLs, {broker_restarts} broker restarts, {len(stored)} stored")
    assert kills >= 3 and broker_restarts == 2
    assert len(wanted) == TOTAL
    assert len(stored) == len(set(stored)) == stack.event_count()
    assert set(stored) == wanted
