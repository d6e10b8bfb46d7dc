"""``cloud-api provision-lot`` as an operator runs it: the device token works on the lot's
changes feed, the Mosquitto password entry is accepted by a real broker with the shipped ACL,
the printed ``[sync]`` section passes ``gate-agent check-config``, and ``cloud`` is refused."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

import parkgate_protocol as p
from devservices import REPO_ROOT as ROOT
from devservices import MosquittoInstance, World
from tests.support.cloud import Clock, TestClient
from tests.support.mqtt import NOT_AUTHORIZED, Peer

pytestmark = pytest.mark.integration


def provision(sqlite_url: str, lot: str, passwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cloud_api.cli",
            "provision-lot",
            lot,
            "--database-url",
            sqlite_url,
            "--passwd-file",
            str(passwd),
            "--broker-host",
            "mqtt.example.test",
            "--broker-port",
            "8883",
            "--cloud-url",
            "https://cloud.example.test",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_provision_lot_gives_a_working_token_broker_login_and_agent_section(
    tmp_path: Path, sqlite_url: str, world: World, client: TestClient, clock: Clock
) -> None:
    clock.now = datetime.now(UTC)  # the command issues the token on the real clock (it expires)
    passwd = tmp_path / "passwd"
    done = provision(sqlite_url, str(world.lot_id), passwd)
    assert done.returncode == 0, done.stderr
    section = tomllib.loads(done.stdout)["sync"]
    assert section["username"] == str(world.lot_id)
    assert section["broker_host"] == "mqtt.example.test" and section["broker_port"] == 8883

    # the device token reads the lot's change feed, and only that lot's
    auth = {"Authorization": f"Bearer {section['device_token']}"}
    assert client.get(f"/lots/{world.lot_id}/changes?since=0", headers=auth).status_code == 200
    other = client.get(f"/lots/{world.other_lot_id}/changes?since=0", headers=auth)
    assert other.status_code in (403, 404)

    # a real Mosquitto with the shipped ACL accepts the entry, for that lot's topics only
    with MosquittoInstance(tmp_path / "mqtt", password_file=passwd) as broker:
        lot = Peer(broker, section["username"], section["password"])
        try:
            assert lot.connect_rc is not None and not lot.connect_rc.is_failure
            status = p.Status(lot_id=str(world.lot_id), state="offline")
            own = lot.publish(p.topic(str(world.lot_id), "status"), p.encode(status))
            assert not own.is_failure
            foreign = lot.publish(p.topic(str(world.other_lot_id), "events"), b"{}")
            assert foreign.value == NOT_AUTHORIZED
        finally:
            lot.client.disconnect()
            lot.client.loop_stop()
        impostor = Peer(broker, section["username"], "wrong-password")
        try:
            assert impostor.connect_rc is not None and impostor.connect_rc.is_failure
        finally:
            impostor.client.loop_stop()

    # the printed section completes an agent config that gate-agent check-config accepts
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[lot]\nid = "{world.lot_id}"\ndata_dir = "{tmp_path / "agent"}"\n\n'
        f'[[lanes]]\nid = "entry-1"\ndirection = "entry"\n'
        f'camera = {{ kind = "replay", path = "{tmp_path}" }}\nbarrier = {{ kind = "dry-run" }}\n\n'
        + done.stdout
    )
    cmd = [sys.executable, "-m", "gate_agent.cli", "check-config", str(config)]
    check = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "ok"


def test_provision_lot_refuses_the_cloud_username(tmp_path: Path, sqlite_url: str) -> None:
    passwd = tmp_path / "passwd"
    done = provision(sqlite_url, "cloud", passwd)
    assert done.returncode == 2
    assert "reserved" in done.stderr
    assert done.stdout == ""
    assert not passwd.exists()  # the broker's cloud account was not touched
