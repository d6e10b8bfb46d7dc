"""Issue 14 finding 6: a photo upload that acts is audited like a manual open.

Before the fix ``act`` on an uploaded photo journaled the pass and pulsed the barrier with no
audit row: whoever held the API token (or an operator session) could open the gate unrecorded
in the audit log. Now the audit row (actor, lane, reason) is written before the lane acts.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from gpiozero.pins.mock import MockFactory

from devservices import wait_for
from gate_agent.app import Agent
from tests.attacks.conftest import API_TOKEN, LANE, OPERATOR, csrf_of, logged_in, pulses
from tests.gate_agent.test_web_api import BOOKED_PHOTO


def test_an_acting_api_upload_is_audited_before_the_barrier_opens(
    base_url: str, running_agent: Agent, pins: MockFactory, dataset_dir: Path
) -> None:
    response = httpx.post(
        f"{base_url}/api/lanes/{LANE}/frames",
        params={"reason": "commissioning camera 2"},
        files={"image": ("car.jpg", (dataset_dir / BOOKED_PHOTO).read_bytes(), "image/jpeg")},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["open"] is True
    wait_for(lambda: pulses(pins) == 1, timeout=5)
    [entry] = running_agent.store.audit_log()
    assert (entry.actor, entry.action, entry.reason, entry.lane_id) == (
        "api-token",
        "photo_upload",
        "commissioning camera 2",
        LANE,
    )
    assert entry.detail == {"via": "api"}


def test_an_acting_form_upload_is_audited_with_the_operator(
    base_url: str, running_agent: Agent, pins: MockFactory, dataset_dir: Path
) -> None:
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        assert logged_in(client).status_code == 303
        token = csrf_of(client.get("/").text)
        photo = {"image": ("car.jpg", (dataset_dir / BOOKED_PHOTO).read_bytes(), "image/jpeg")}
        preview = client.post(f"/lanes/{LANE}/evaluate", data={"csrf": token}, files=photo)
        assert preview.status_code == 200 and running_agent.store.audit_log() == []
        form = {"csrf": token, "act": "1"}
        acted = client.post(f"/lanes/{LANE}/evaluate", data=form, files=photo)
    assert acted.status_code == 200 and "OPENED" in acted.text
    [entry] = running_agent.store.audit_log()
    assert (entry.actor, entry.action, entry.reason, entry.lane_id) == (
        OPERATOR,
        "photo_upload",
        "commissioning photo upload",  # the default when the form's reason is left empty
        LANE,
    )
    wait_for(lambda: pulses(pins) == 1, timeout=5)
