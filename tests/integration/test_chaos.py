"""Chaos: 1,000 events while the agent is SIGKILLed and restarted at random points and the broker
is restarted twice (while the agent drains its backlog) → every journaled event id is in the cloud
exactly once.

The broker restarts are what lost events before: Mosquitto 2.0 did not restore the ingest's
``$share`` subscription, answered the lot's publishes with PUBACK 0x10 (no matching subscribers,
a *success* code) and the agent marked them sent (``docs/protocol.md``, delivery guarantees)."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from devservices import REPO_ROOT, CloudStack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 1000
KILLS = 8


def journaled(data_dir: Path) -> set[str]:
    db = data_dir / "agent.sqlite3"
    if not db.exists():
        return set()
    with sqlite3.connect(db, timeout=10) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


def chaos_agent(data_dir: Path, stack: CloudStack, lot_id: int, total: int) -> list[str]:
    sync = json.dumps(stack.agent_sync(lot_id))
    module = "tests.integration.chaos_agent"
    return [sys.executable, "-m", module, str(data_dir), str(lot_id), sync, str(total), "0.02"]


def test_every_event_once_through_kills_and_broker_restarts(
    tmp_path: Path, stack: CloudStack, lot_id: int
) -> None:
    rng = random.Random(4)
    data_dir = tmp_path / "agent"
    data_dir.mkdir()
    cmd = chaos_agent(data_dir, stack, lot_id, TOTAL)

    def spawn() -> subprocess.Popen[bytes]:
        quiet = subprocess.DEVNULL
        return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=quiet, stderr=quiet)

    # random points in the journal: SIGKILL the agent there, except at two of them where the
    # broker is restarted under the running agent (it reconnects and keeps draining)
    points = sorted(rng.sample(range(30, TOTAL - 30), KILLS + 2))
    broker_at = {points[2], points[6]}
    agent = spawn()
    kills = broker_restarts = 0
    try:
        for point in points:
            wait_for(
                lambda p=point: len(journaled(data_dir)) >= p,
                timeout=60,
                interval=0.01,
                what=f"{point} events journaled",
            )
            if point in broker_at:
                stack.broker.restart()
                broker_restarts += 1
                continue
            agent.send_signal(signal.SIGKILL)
            agent.wait()
            kills += 1
            agent = spawn()
        wait_for(lambda: len(journaled(data_dir)) >= TOTAL, timeout=60, what="all journaled")
        wanted = journaled(data_dir)
        wait_for(
            lambda: stack.event_count() >= len(wanted),
            timeout=60,
            interval=0.1,
            what="all events in the cloud",
        )
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    stored = stack.event_ids()
    assert kills == KILLS and broker_restarts == 2
    assert len(wanted) == TOTAL
    assert len(stored) == len(set(stored)) == stack.event_count()
    assert set(stored) == wanted
