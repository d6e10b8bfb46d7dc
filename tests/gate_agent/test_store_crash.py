"""Durability at the store level: what record_pass returned for survives a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gate_agent.store import Store

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from gate_agent.domain import Direction
from gate_agent.domain import EventKind, JournalEvent
from gate_agent.store import Store

store = Store(sys.argv[1])
i = 0
while True:
    event = JournalEvent(lot_id="lot1", kind=EventKind.ENTRY, lane_id="in1",
                         direction=Direction.ENTRY, visit_id=f"v{i}", plate=f"CAR{i}")
    store.record_pass(event, presence="enter")
    print("committed", event.event_id, flush=True)
    i += 1
"""


def test_sigkill_right_after_commit_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    committed = []
    try:
        for line in child.stdout:
            committed.append(line.split()[1])
            if len(committed) == 25:
                child.send_signal(signal.SIGKILL)  # mid-loop: the next commit may be half done
                break
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with Store(path) as store:
        journaled = {e.event_id for e in store.unsent_events(limit=10_000)}
        inside = {p.plate for p in store.inside()}
    assert set(committed) <= journaled
    assert {f"CAR{i}" for i in range(25)} <= inside
    assert len(inside) == len(journaled)  # each event and its presence change together
