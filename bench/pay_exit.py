"""Payment webhook accepted → exit barrier command for a car waiting at the exit, the whole chain
(issue 13: p99 ≤ 2 s with real Mosquitto).

The real cloud stack (``devservices.CloudStack``: the API over loopback HTTP, the relay woken on
commit, the ingest, a secured Mosquitto) and a real gate agent built from its config
(``build_agent``, in-process: an entry and an exit lane on gpiozero's mock pins, the real
recognizer, its sync client over that broker). The lot's policy admits drive-ups and holds a car
that owes at the exit. For each of ``CARS`` cars (distinct dataset photos whose plate the lane
reads as labelled):

1. the photo at the entry opens with ``drive_up``; the agent publishes the entry, the cloud's
   ingest opens the stay;
2. the same photo at the exit is held (``payment_due``); the cloud prices the stay and makes its
   payment (``start_stay_payment``, the outbox creating the local provider's payment);
3. timed: from the moment the local provider starts delivering the signed
   ``payment_intent.succeeded`` webhook to the API until the exit lane has commanded its barrier
   open for the held car (its listener, which runs after the pulse is commanded), with no new
   camera read: webhook → ledger → relay → MQTT → agent feed → ``Lane.stay_paid``.

The first ``WARM_UP`` cars are not counted.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TARGET_P99_MS = 2000.0
CARS = 50
WARM_UP = 5
POLICY = {
    "drive_up": True,
    "drive_up_spaces": 1000,  # a misread car let in stays inside: never the limit here
    "pay_before_exit": True,
    "tariff": {"vehicles": {"car": {"rate_cents": 250, "daily_max_cents": 1500}}},
}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Opened:
    """The exit lane's listener: when it commanded its barrier open, per stay."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._cond = threading.Condition()

    def __call__(self, outcome: Any) -> None:
        now = time.perf_counter()
        decision = outcome.decision
        if decision.open and decision.stay_id is not None:
            with self._cond:
                self.at.setdefault(decision.stay_id, now)
                self._cond.notify_all()

    def wait(self, stay_id: str, timeout: float) -> float | None:
        with self._cond:
            self._cond.wait_for(lambda: stay_id in self.at, timeout=timeout)
            return self.at.get(stay_id)


def _photos(limit: int) -> Iterator[tuple[Any, str]]:
    """Dataset photos, each of a plate not seen before, with their labelled plate."""
    import cv2

    from bench.dataset import load_samples

    seen: set[str] = set()
    for sample in load_samples():
        if sample.plate in seen or len(seen) >= limit:
            continue
        image = cv2.imread(str(sample.image))
        if image is not None:
            seen.add(sample.plate)
            yield image, sample.plate


def _agent(workdir: Path, stack: Any, lot_id: int) -> Any:
    import cv2
    import numpy as np
    from gpiozero.pins.mock import MockFactory

    from gate_agent.app import build_agent
    from gate_agent.config import parse_config
    from gate_agent.recognition import Recognizer, models_dir_from_env

    road = workdir / "road"
    road.mkdir(parents=True)
    cv2.imwrite(str(road / "empty.jpg"), np.zeros((240, 320, 3), dtype=np.uint8))
    lanes = [
        {
            "id": lane_id,
            "direction": direction,
            "camera": {"kind": "replay", "path": str(road), "fps": 1, "loop": False},
            "barrier": {"kind": "gpio", "pin": pin, "pulse_seconds": 0.3, "mock": True},
            "read_codes": False,
        }
        for lane_id, direction, pin in (("entry-1", "entry", 17), ("exit-1", "exit", 18))
    ]
    sync = {**stack.agent_sync(lot_id), "heartbeat_seconds": 1}
    config = parse_config(
        {
            "lot": {"id": str(lot_id), "data_dir": str(workdir / "agent")},
            "web": {"enabled": False},
            "sync": sync,
            "lanes": lanes,
        }
    )
    models = models_dir_from_env() or Path(__file__).resolve().parents[2] / "shared" / "models"
    recognizer = Recognizer.from_models(models, threads=2)
    return build_agent(config, recognizer=recognizer, pin_factory=MockFactory()).start()


def _set_policy(stack: Any, lot_id: int) -> None:
    from cloud_api.policies import current_policy, set_policy

    with stack.sessions.begin() as s:
        fields = {**current_policy(s, lot_id).to_wire(), **POLICY}
        set_policy(s, lot_id, fields, actor=None, now=datetime.now(UTC))


class _Cloud:
    """The cloud's side of paying one stay: its payment made, then its capture delivered."""

    def __init__(self, stack: Any, lot_id: int) -> None:
        import httpx

        from cloud_api.outbox import OutboxWorker
        from cloud_api.payments import LocalProvider
        from cloud_api.payments.checkout import PayLinks
        from cloud_api.payments.configured import resolve_webhook_secret
        from cloud_api.payments.handlers import payment_handlers
        from cloud_api.settings import Settings

        self.stack, self.lot_id = stack, lot_id
        secret = resolve_webhook_secret(Settings(database_url=stack.url))
        self.provider = LocalProvider(
            webhook_secret=secret,
            webhook_url=f"{stack.base_url}/payments/webhook",
            http_client=httpx.Client(timeout=10),
        )
        handlers = payment_handlers(self.provider, PayLinks(stack.base_url))
        self.worker = OutboxWorker(stack.sessions, handlers)

    def stay_opened(self, gate_stay_id: str) -> bool:
        from sqlalchemy import select

        from cloud_api.stays import Stay

        with self.stack.sessions() as s:
            query = select(Stay.id).where(
                Stay.lot_id == self.lot_id, Stay.gate_stay_id == gate_stay_id
            )
            return s.scalar(query) is not None

    def payment_for(self, gate_stay_id: str) -> str:
        """The provider's reference of a new payment of what the stay owes now."""
        from sqlalchemy import select

        from cloud_api.stays import Stay, start_stay_payment

        with self.stack.sessions.begin() as s:
            stay = s.scalars(
                select(Stay).where(Stay.lot_id == self.lot_id, Stay.gate_stay_id == gate_stay_id)
            ).one()
            payment_id = str(start_stay_payment(s, stay, datetime.now(UTC)).id)
        while self.worker.run_once():
            pass
        return next(
            ref
            for ref, p in self.provider.payments.items()
            if p.metadata["payment_id"] == payment_id
        )


def _measure(workdir: Path) -> tuple[list[float], list[str]]:
    from devservices import CloudStack, wait_for
    from gate_agent.domain import Reason

    stack = CloudStack(workdir / "cloud").start()
    lot_id = stack.lot_ids[0]
    agent = None
    latencies: list[float] = []
    skipped: list[str] = []
    try:
        _set_policy(stack, lot_id)
        agent = _agent(workdir, stack, lot_id)
        cloud = _Cloud(stack, lot_id)
        opened = _Opened()
        entry, exit_ = agent.lanes["entry-1"], agent.lanes["exit-1"]
        exit_.add_listener(opened)

        def drive_ups_admitted() -> bool:
            held = agent.store.policy
            return held is not None and held.policy.drive_up

        wait_for(drive_ups_admitted, timeout=30, what="the policy at the gate")
        counted = 0
        for image, plate in _photos(CARS * 2):
            if counted >= CARS:
                break
            came_in = entry.evaluate_image(image)
            if (came_in.decision.reason, came_in.decision.plate) != (Reason.DRIVE_UP, plate):
                skipped.append(f"{plate}: entry {came_in.decision.reason.value}")
                continue
            held = exit_.evaluate_image(image)
            if held.decision.reason is not Reason.PAYMENT_DUE:
                skipped.append(f"{plate}: exit {held.decision.reason.value}")
                continue
            stay_id = came_in.visit_id
            wait_for(lambda s=stay_id: cloud.stay_opened(s), timeout=15, what="stay in the cloud")  # type: ignore[misc]
            ref = cloud.payment_for(stay_id)
            started = time.perf_counter()
            cloud.provider.complete(ref)  # the signed webhook, posted to the real API
            landed = opened.wait(stay_id, timeout=10)
            if landed is None:
                skipped.append(f"{plate}: paid, the exit did not open within 10 s")
            elif counted >= WARM_UP:
                latencies.append((landed - started) * 1000)
            counted += 1
    finally:
        if agent is not None:
            agent.stop()
        stack.stop()
    return latencies, skipped


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench-pay-exit-") as tmp:
        latencies, skipped = _measure(Path(tmp))
    wanted = CARS - WARM_UP
    opened = [f"  not counted: {s}" for s in skipped if "did not open" in s]
    if len(latencies) < wanted:
        return [f"pay exit: only {len(latencies)} of {wanted} held cars let out  FAIL", *opened]
    p50, p99 = statistics.median(latencies), _pct(latencies, 0.99)
    verdict = "PASS" if p99 <= TARGET_P99_MS else "FAIL"
    return [
        f"pay exit: {wanted} held drive-ups paid (real Mosquitto, API + relay + ingest, agent "
        f"lanes; {len(skipped)} photos skipped as misread)",
        f"webhook → exit barrier command  p50 {p50:.0f} ms  p99 {p99:.0f} ms  max "
        f"{max(latencies):.0f} ms   target p99 ≤ {TARGET_P99_MS:.0f} ms  {verdict}",
    ]


if __name__ == "__main__":
    for line in run():
        print(line)
