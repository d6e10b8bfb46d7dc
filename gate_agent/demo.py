"""``make demo``: a lot on this machine, on embedded defaults.

Today: one gate agent with an entry and an exit lane replaying the shared dataset photos
(``$DEMO_IMAGES`` overrides), mock GPIO relays, and bookings for some of the plates in those
photos, so both lanes open for booked cars and deny the rest. Ctrl-C stops it cleanly; a second
run starts clean (the demo state lives in ``.demo/``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.dataset import load_samples
from gate_agent.app import build_agent
from gate_agent.config import parse_config
from gate_agent.domain import Reservation, ReservationStatus
from gate_agent.lane import LaneOutcome
from gate_agent.plates import normalise

log = logging.getLogger("parkgate.demo")
ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".demo"


def _images() -> Path:
    folder = Path(os.environ.get("DEMO_IMAGES", "")) if os.environ.get("DEMO_IMAGES") else None
    if folder is not None:
        return folder
    samples = load_samples()
    return samples[0].image.parent


def _config(images: Path) -> dict[str, object]:
    def lane(lane_id: str, direction: str, pin: int) -> dict[str, object]:
        return {
            "id": lane_id,
            "direction": direction,
            "camera": {"kind": "replay", "path": str(images), "fps": 0.5},
            "barrier": {"kind": "gpio", "pin": pin, "pulse_seconds": 1.0, "mock": True},
        }

    return {
        "lot": {"id": "demo-lot", "data_dir": str(DEMO_DIR / "agent")},
        "passes": {"budget_seconds": 1.5, "gap_seconds": 0.5},
        "lanes": [lane("entry-1", "entry", 17), lane("exit-1", "exit", 27)],
    }


def _bookings(images: Path) -> list[Reservation]:
    now = datetime.now(UTC)
    samples = [s for s in load_samples() if s.image.parent == images][::2]
    return [
        Reservation(
            id=f"demo{i}",
            plate=normalise(s.plate),
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=4),
            status=ReservationStatus.CONFIRMED,
        )
        for i, s in enumerate(samples)
    ]


def _print_outcome(outcome: LaneOutcome) -> None:
    d = outcome.decision
    action = "OPEN " if d.open else "DENY "
    print(
        f"[{outcome.lane_id:8}] {action} {d.reason.value:18} plate={d.plate} "
        f"visit={outcome.visit_id}",
        flush=True,
    )


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    shared_models = ROOT.parent / "shared" / "models"
    if shared_models.is_dir():  # the offline models beside the checkout, as `make` sets them
        os.environ.setdefault("PARKGATE_MODELS_DIR", str(shared_models))
    shutil.rmtree(DEMO_DIR / "agent", ignore_errors=True)  # a second run starts clean
    images = _images()
    agent = build_agent(parse_config(_config(images)))
    agent.store.upsert_reservations(_bookings(images))
    for lane in agent.lanes.values():
        lane.add_listener(_print_outcome)
    print(f"ParkGate demo: lot demo-lot, replaying {images}; Ctrl-C to stop", flush=True)
    agent.start()
    try:
        while not agent.wait(1.0):
            pass
    except KeyboardInterrupt:
        print("stopping…", flush=True)
    finally:
        agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
