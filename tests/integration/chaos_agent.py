"""A camera-less lot for the chaos and partition tests: a real ``Store`` and ``SyncClient`` that
journal events ``chaos-00000`` … until ``total`` exist (run as ``python -m``; restartable)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from gate_agent.config import SyncConfig
from gate_agent.domain import EventKind, JournalEvent
from gate_agent.store import Store
from gate_agent.sync import SyncClient

COUNTER = "chaos.next"


def main(data_dir: str, lot_id: str, sync_json: str, total: int, pause_s: float) -> int:
    store = Store(Path(data_dir) / "agent.sqlite3")
    config = SyncConfig(**json.loads(sync_json))
    client = SyncClient(config, lot_id=lot_id, store=store, data_dir=Path(data_dir)).start()
    n = int(store.get_state(COUNTER, 0))
    while n < total:
        # a fixed id per n: journaling it again after a SIGKILL is a no-op
        event_id = f"chaos-{n:05d}"
        detail = {"n": n}
        store.journal(
            JournalEvent(
                lot_id=lot_id,
                kind=EventKind.HEALTH,
                lane_id="chaos",
                event_id=event_id,
                detail=detail,
            )
        )
        n += 1
        store.set_state(COUNTER, n)
        client.notify()
        time.sleep(pause_s)
    while True:  # keep draining until killed
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
