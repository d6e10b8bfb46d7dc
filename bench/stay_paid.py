"""A stay paid by plate, the cloud's part of "payment webhook accepted → exit barrier command
p99 ≤ 2 s" (issue 13): from the provider's signed webhook (the local provider posting it to the
real API over loopback HTTP) until the ``stay_paid`` change arrives at the lot's MQTT subscriber
through a real Mosquitto (relay woken on commit). The gate's part (change applied → barrier
command for a held car) is the gate's bench.

Each of ``STAYS`` drive-up stays is opened by an entry event the lot publishes, priced and paid
(``start_stay_payment``, the outbox creating the provider's payment), then its capture is
delivered and timed. The first ``WARM_UP`` are not counted.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_P99_MS = 2000.0
STAYS = 60
WARM_UP = 10


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _LotSubscriber:
    """The lot's side: subscribed to its reservations topic, noting when each stay_paid lands."""

    def __init__(self, host: str, port: int, user: str, password: str, lot: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        from parkgate_protocol import topic

        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-{lot}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self.ready.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(topic(lot, "reservations"), qos=1)
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: object) -> None:
        from parkgate_protocol import ChangeKind, parse_reservation_change

        now = time.perf_counter()
        change = parse_reservation_change(msg.payload)  # type: ignore[attr-defined]
        if change.kind is ChangeKind.STAY_PAID and change.stay_payment is not None:
            with self._cond:
                self.arrived.setdefault(change.stay_payment.stay_id, now)
                self._cond.notify_all()

    def wait(self, stay_id: str, timeout: float) -> float | None:
        with self._cond:
            self._cond.wait_for(lambda: stay_id in self.arrived, timeout=timeout)
            return self.arrived.get(stay_id)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _measure(workdir: Path) -> list[float]:
    from sqlalchemy import select

    from cloud_api.outbox import OutboxWorker
    from cloud_api.payments import LocalProvider
    from cloud_api.payments.checkout import PayLinks
    from cloud_api.payments.configured import resolve_webhook_secret
    from cloud_api.payments.handlers import payment_handlers
    from cloud_api.policies import current_policy, set_policy
    from cloud_api.settings import Settings
    from cloud_api.stays import Stay, start_stay_payment
    from devservices import CloudStack, wait_for
    from parkgate_protocol import GateEvent, GateEventKind, default_tariff, encode, topic

    stack = CloudStack(workdir / "cloud").start()
    lot_id = stack.lot_ids[0]
    lot = str(lot_id)
    device = stack.devices[lot_id]
    secret = resolve_webhook_secret(Settings(database_url=stack.url))
    provider = LocalProvider(
        webhook_secret=secret, webhook_url=f"{stack.base_url}/payments/webhook"
    )
    worker = OutboxWorker(stack.sessions, payment_handlers(provider, PayLinks(stack.base_url)))
    gate = _LotSubscriber(
        stack.broker.host, stack.broker.port, device.mqtt_username, device.mqtt_password, lot
    )
    latencies: list[float] = []
    try:
        gate.ready.wait(10)
        with stack.sessions.begin() as s:
            fields = {
                **current_policy(s, lot_id).to_wire(),
                "tariff": default_tariff().model_dump(),
            }
            set_policy(s, lot_id, fields, actor=None, now=datetime.now(UTC))
        entered = datetime.now(UTC) - timedelta(hours=2)
        for i in range(STAYS):
            event = GateEvent(
                event_id=uuid.uuid4().hex,
                lot_id=lot,
                kind=GateEventKind.ENTRY,
                reason="drive_up",
                visit_id=f"v_{i}",
                stay_id=f"v_{i}",
                plate=f"BP{i:05d}",
                occurred_at=entered,
            )
            gate.client.publish(topic(lot, "events"), encode(event), qos=1)

        def opened() -> bool:
            with stack.sessions() as s:
                return len(s.scalars(select(Stay.id)).all()) == STAYS

        wait_for(opened, timeout=30, what="every stay opened by the ingest")
        with stack.sessions.begin() as s:
            payments = {
                stay.gate_stay_id: start_stay_payment(s, stay, datetime.now(UTC)).id
                for stay in s.scalars(select(Stay).order_by(Stay.id))
            }
        while worker.run_once():
            pass
        refs = {p.metadata["payment_id"]: ref for ref, p in provider.payments.items()}
        for i in range(STAYS):
            stay_id = f"v_{i}"
            started = time.perf_counter()
            provider.complete(refs[str(payments[stay_id])])
            landed = gate.wait(stay_id, timeout=10)
            if landed is not None and i >= WARM_UP:
                latencies.append((landed - started) * 1000)
    finally:
        gate.close()
        stack.stop()
    return latencies


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench-stay-paid-") as tmp:
        latencies = _measure(Path(tmp))
    counted = STAYS - WARM_UP
    if len(latencies) < counted:
        return [f"stay_paid: only {len(latencies)} of {counted} reached the lot  FAIL"]
    p99 = _pct(latencies, 0.99)
    verdict = "ok" if p99 <= TARGET_P99_MS else "FAIL"
    return [
        f"webhook → stay_paid at the lot (real Mosquitto, {counted} stays): "
        f"p50 {statistics.median(latencies):.0f} ms, p99 {p99:.0f} ms "
        f"(target p99 ≤ {TARGET_P99_MS:.0f} ms for webhook → barrier)  {verdict}"
    ]
