"""``cloud-api provision-lot`` as an operator runs it: the device token works on the lot's
changes feed, the Mosquitto password entry is accepted by a real broker with the shipped config
over its TLS listener (certificates by ``cloud-api broker-tls``, checked by the agent's client with
the CA the lot is handed), the printed ``[sync]`` section passes ``gate-agent check-config``
(without TLS for a remote broker it does not), and ``cloud`` is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from paho.mqtt.reasoncodes import ReasonCode

import parkgate_protocol as p
from cloud_api.lot_sync import BrokerTls
from devservices import REPO_ROOT as ROOT
from devservices import MosquittoInstance, World, wait_for
from gate_agent.config import SyncConfig
from gate_agent.sync._session import new_client
from tests.support.cloud import Clock, TestClient
from tests.support.mqtt import Peer

pytestmark = pytest.mark.integration


def cloud_api(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_api.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def provision(
    sqlite_url: str, lot: str, passwd: Path, *tls: str, host: str = "mqtt.example.test"
) -> subprocess.CompletedProcess[str]:
    return cloud_api(
        *("provision-lot", lot, "--database-url", sqlite_url, "--passwd-file", str(passwd)),
        *("--broker-host", host, "--cloud-url", "https://cloud.example.test", *tls),
    )


def check_config(tmp_path: Path, lot_id: int, sync: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[lot]\nid = "{lot_id}"\ndata_dir = "{tmp_path / "agent"}"\n\n'
        f'[[lanes]]\nid = "entry-1"\ndirection = "entry"\n'
        f'camera = {{ kind = "replay", path = "{tmp_path}" }}\nbarrier = {{ kind = "dry-run" }}\n\n'
        + sync
    )
    cmd = [sys.executable, "-m", "gate_agent.cli", "check-config", str(config)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_provision_lot_gives_a_working_token_broker_login_and_agent_section(
    tmp_path: Path, sqlite_url: str, world: World, client: TestClient, clock: Clock
) -> None:
    clock.now = datetime.now(UTC)  # the command issues the token on the real clock (it expires)
    passwd = tmp_path / "passwd"
    made = cloud_api("broker-tls", "--dir", str(tmp_path / "tls"), "--hostname", "localhost")
    assert made.returncode == 0, made.stderr
    tls = BrokerTls(tmp_path / "tls")
    ca = ("--tls-ca-file", str(tls.ca_cert), "--agent-ca-path", str(tmp_path / "lot-ca.crt"))
    done = provision(sqlite_url, str(world.lot_id), passwd, *ca, host="localhost")
    assert done.returncode == 0, done.stderr
    section = tomllib.loads(done.stdout)["sync"]
    assert section["username"] == str(world.lot_id)
    assert section["broker_host"] == "localhost" and section["broker_port"] == 8883
    assert section["tls_ca_file"] == str(tmp_path / "lot-ca.crt")
    assert f"copy {tls.ca_cert} to the lot as {tmp_path / 'lot-ca.crt'}" in done.stdout
    shutil.copy(tls.ca_cert, tmp_path / "lot-ca.crt")  # what the operator does

    # the device token reads the lot's change feed, and only that lot's
    auth = {"Authorization": f"Bearer {section['device_token']}"}
    assert client.get(f"/lots/{world.lot_id}/changes?since=0", headers=auth).status_code == 200
    other = client.get(f"/lots/{world.other_lot_id}/changes?since=0", headers=auth)
    assert other.status_code in (403, 404)

    # a real Mosquitto (shipped config and ACL) accepts the entry over its TLS listener, checked
    # with the CA the lot was handed, for that lot's topics only
    with MosquittoInstance(tmp_path / "mqtt", password_file=passwd, tls_dir=tls.directory) as b:
        assert b.tls_port is not None
        config = SyncConfig.model_validate({**section, "broker_port": b.tls_port})
        lot = new_client(config, str(world.lot_id), p.topic(str(world.lot_id), "status"))
        answers: list[ReasonCode] = []
        lot.on_connect = lambda _c, _u, _f, rc, _p: answers.append(rc)
        lot.connect(config.broker_host, config.broker_port)
        lot.loop_start()
        try:
            wait_for(lambda: answers, what="the lot's CONNACK over TLS")
            assert not answers[0].is_failure
        finally:
            lot.disconnect()
            lot.loop_stop()
        impostor = Peer(b, section["username"], "wrong-password")
        try:
            assert impostor.connect_rc is not None and impostor.connect_rc.is_failure
        finally:
            impostor.client.loop_stop()

    # the printed section completes an agent config that gate-agent check-config accepts
    check = check_config(tmp_path, world.lot_id, done.stdout)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "ok"


def test_a_section_for_a_remote_broker_without_tls_is_refused_by_the_agent(
    tmp_path: Path, sqlite_url: str, world: World
) -> None:
    """Without --tls-ca-file the section dials a remote broker in clear: gate-agent
    check-config says so and names tls_ca_file (the lot's password would cross the network)."""
    done = provision(sqlite_url, str(world.lot_id), tmp_path / "passwd")
    assert done.returncode == 0, done.stderr
    assert tomllib.loads(done.stdout)["sync"]["broker_port"] == 1883
    check = check_config(tmp_path, world.lot_id, done.stdout)
    assert check.returncode != 0
    assert "tls_ca_file" in check.stdout + check.stderr


def test_provision_lot_refuses_a_missing_ca_file(tmp_path: Path, sqlite_url: str) -> None:
    done = provision(sqlite_url, "1", tmp_path / "passwd", "--tls-ca-file", str(tmp_path / "no"))
    assert done.returncode == 2
    assert "no CA certificate" in done.stderr
    assert not (tmp_path / "passwd").exists()


def test_provision_lot_refuses_the_cloud_username(tmp_path: Path, sqlite_url: str) -> None:
    passwd = tmp_path / "passwd"
    done = provision(sqlite_url, "cloud", passwd)
    assert done.returncode == 2
    assert "reserved" in done.stderr
    assert done.stdout == ""
    assert not passwd.exists()  # the broker's cloud account was not touched
