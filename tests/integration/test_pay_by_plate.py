"""A drive-up stay paid by plate, end to end on the real stack: the lot publishes its entry on a
real Mosquitto, the ingest opens the stay, the driver finds it by plate and pays over real HTTP,
the local provider delivers the signed webhook to the real API, and the relay pushes the
``stay_paid`` change to the lot's subscriber."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cloud_api.models import Payment
from cloud_api.policies import current_policy, set_policy
from cloud_api.stays import Stay
from devservices import CloudStack, wait_for
from parkgate_protocol import (
    ChangeKind,
    GateEvent,
    GateEventKind,
    default_tariff,
    encode,
    parse_reservation_change,
    topic,
)
from tests.support.mqtt import Peer

pytestmark = pytest.mark.integration


def _stays(stack: CloudStack) -> int:
    """Stays in the cloud's database (polled: pay by plate itself is rate-limited)."""
    with stack.sessions() as s:
        return s.scalar(select(func.count()).select_from(Stay)) or 0


PLATE = "PB42XY"


def test_a_drive_up_paid_by_plate_reaches_the_lot_as_stay_paid(stack: CloudStack) -> None:
    lot_id = stack.lot_ids[0]
    lot = str(lot_id)
    device = stack.devices[lot_id]
    gate = Peer(stack.broker, device.mqtt_username, device.mqtt_password)
    with stack.sessions.begin() as s:  # the stack's lots are free; drive-ups pay €2.50 an hour
        fields = {**current_policy(s, lot_id).to_wire(), "tariff": default_tariff().model_dump()}
        set_policy(s, lot_id, fields, actor=None, now=datetime.now(UTC))
    try:
        assert not gate.subscribe(topic(lot, "reservations")).is_failure
        entered = datetime.now(UTC) - timedelta(minutes=90)
        entry = GateEvent(
            event_id=uuid.uuid4().hex,
            lot_id=lot,
            kind=GateEventKind.ENTRY,
            reason="drive_up",
            visit_id="v_drive",
            stay_id="v_drive",
            plate=PLATE,
            occurred_at=entered,
        )
        assert not gate.publish(topic(lot, "events"), encode(entry)).is_failure
        wait_for(lambda: _stays(stack), timeout=10, what="the stay opened by the ingest")
        found = stack.http.get(f"/lots/{lot_id}/sessions", params={"plate": PLATE})
        assert found.status_code == 200, found.text
        [stay] = found.json()
        assert stay["amount_due_cents"] > 0
        answer = stack.http.post(f"/sessions/{stay['session_id']}/pay")
        assert answer.status_code == 201, answer.text
        payment_id = answer.json()["payment_id"]
        with stack.sessions() as s:  # the driver presses Pay on the hosted (local) pay page
            public_id = s.get_one(Payment, payment_id).public_id
        assert answer.json()["checkout_url"].endswith(f"/pay/{public_id}")
        pressed = stack.http.post(f"/pay/{public_id}/local")
        assert pressed.status_code == 303, pressed.text

        def pushed() -> list[object]:
            changes = [parse_reservation_change(body) for _, body in list(gate.messages)]
            return [c.stay_payment for c in changes if c.kind is ChangeKind.STAY_PAID]

        [paid] = wait_for(pushed, timeout=10, what="stay_paid at the lot")
        assert paid is not None
        assert (paid.stay_id, paid.plate, paid.paid_cents) == (
            "v_drive",
            PLATE,
            stay["amount_due_cents"],
        )
        assert paid.payment_id == str(payment_id)
        assert stack.http.get(f"/lots/{lot_id}/sessions", params={"plate": PLATE}).json() == []
    finally:
        gate.close()
