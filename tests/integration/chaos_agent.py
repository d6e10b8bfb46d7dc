"""A camera-less lot for the chaos and partition tests: a real ``Store`` and ``SyncClient`` that
journal events ``chaos-00000`` … until ``total`` exist (run as ``python -m``; restartable).

An optional sixth argument replaces the ``chaos`` prefix of the event ids (several agents in one
cloud need ids of their own). ``agent ready`` is printed once the sync client has started."""

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


def main(
    data_dir: str, lot_id: str, sync_json: str, total: int, pause_s: float, prefix: str = "chaos"
) -> int:
    store = Store(Path(data_dir) / "agent.sqlite3")
    config = SyncConfig(**json.loads(sync_json))
    client = SyncClient(config, lot_id=lot_id, store=store, data_dir=Path(data_dir)).start()
    print("agent ready", flush=True)
    n = int(store.get_state(COUNTER, 0))
    while n < total:
        # a fixed id per n: journaling it again after a SIGKILL is a no-op
        event_id = f"{prefix}-{n:05d}"
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
    data_dir, lot_id, sync_json, total, pause_s, *prefix = sys.argv[1:]
    sys.exit(main(data_dir, lot_id, sync_json, int(total), float(pause_s), *prefix))
