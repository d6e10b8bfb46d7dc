"""``make demo``: a whole lot on this machine, on embedded defaults.

Starts, as real processes: a secured Mosquitto (the shipped per-lot ACL), the cloud API on SQLite
with its outbox worker (local payment provider that pays by itself, like a customer would), the
cloud's MQTT relay and ingest, and one gate agent on mock GPIO relays, with its status page: an
entry and an exit lane whose cameras replay the photos of the plates the demo books through the API
(from ``$DEMO_IMAGES``, default the shared dataset), and a pay exit ``exit-2`` watching an empty
road. The lot's policy (set through the API) admits drive-ups and holds a car that owes at the
exit: the demo drives one unbooked car (a dataset photo, ``DEMO_VISITOR_PHOTO`` to choose it) in
and to the pay exit, where it waits until someone pays by plate on the cloud's page (or runs
``python -m demo.driver``). Prints the URLs and credentials, also written to
``.demo/credentials.json``. Ctrl-C stops everything; a second run starts clean.

Ports: ``DEMO_CLOUD_PORT`` (8000), ``DEMO_AGENT_PORT`` (8080), ``DEMO_MQTT_PORT`` (18830);
state: ``DEMO_DIR`` (``.demo``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import httpx
import numpy as np

from demo.stack import (
    ROOT,
    VENV_BIN,
    DemoError,
    DemoSettings,
    Supervisor,
    http_ok,
    port_is_free,
    run_cli,
    secured_demo_broker,
    stop_leftovers,
    sync_section,
    tcp_open,
    wait_until,
)
from demo.visitor import (
    HOLD_WINDOW_SECONDS,
    PAY_EXIT_LANE,
    VISITOR_POLICY,
    AgentApi,
    drive_to_the_exit,
    photos_by_plate,
    replay_folder,
    visitor_candidates,
)

OPERATOR_USER = "operator"


def _dataset_dir() -> Path:
    return Path(
        os.environ.get(
            "PARKGATE_DATASETS_DIR", ROOT.parent / "shared" / "datasets" / "openalpr-endtoend"
        )
    )


def _agent_toml(
    settings: DemoSettings,
    sync: dict[str, object],
    api_token: str,
    password_hash: str,
    replay: Path,
) -> str:
    def q(value: object) -> str:
        return (
            json.dumps(value)
            if isinstance(value, str)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )

    sync_lines = "\n".join(f"{k} = {q(v)}" for k, v in sync.items())
    road = settings.state_dir / "road"  # the pay exit's camera: an empty road until a car comes
    road.mkdir()
    cv2.imwrite(str(road / "empty.jpg"), np.zeros((240, 320, 3), dtype=np.uint8))
    lanes = ""
    for lane_id, direction, pin, frames in (
        ("entry-1", "entry", 17, replay),
        ("exit-1", "exit", 27, replay),
        (PAY_EXIT_LANE, "exit", 22, road),
    ):
        lanes += f"""
[[lanes]]
id = "{lane_id}"
direction = "{direction}"
camera = {{ kind = "replay", path = {q(str(frames))}, fps = 0.5 }}
barrier = {{ kind = "gpio", pin = {pin}, pulse_seconds = 1.0, mock = true }}
hold_window_seconds = {HOLD_WINDOW_SECONDS}
"""
    return f"""# Written by `make demo`; a real lot's config looks like config/agent.example.toml.
[lot]
id = {q(str(sync["username"]))}
data_dir = {q(str(settings.state_dir / "agent"))}

[passes]
budget_seconds = 1.5
gap_seconds = 1.0

[web]
host = "{settings.host}"  # loopback: plain HTTP is allowed (a lot uses HTTPS, see the example)
port = {settings.agent_port}
api_token = {q(api_token)}
session_secret = {q(secrets.token_urlsafe(24))}
operators = [{{ username = "{OPERATOR_USER}", password_hash = {q(password_hash)} }}]

[sync]
{sync_lines}
{lanes}"""


def _set_visitor_policy(settings: DemoSettings, admin_token: str, lot_id: int) -> None:
    """Drive-ups admitted and held at the exit until paid, through the API (as an operator)."""
    auth = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=settings.cloud_url, timeout=10, headers=auth) as client:
        current = client.get(f"/lots/{lot_id}/policy")
        current.raise_for_status()
        body = {k: v for k, v in current.json()["policy"].items() if k != "version"}
        answer = client.put(
            f"/lots/{lot_id}/policy",
            json={**body, **VISITOR_POLICY},
            headers={"If-Match": current.headers["ETag"]},
        )
        if answer.status_code != 200:
            raise DemoError(f"the lot policy was refused: {answer.text[:300]}")


def _book(settings: DemoSettings, token: str, lot_id: int, plates: list[str]) -> list[str]:
    now = datetime.now(UTC)
    booked = []
    with httpx.Client(base_url=settings.cloud_url, timeout=10) as client:
        for plate in plates:
            response = client.post(
                "/bookings",
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"demo-{plate}"},
                json={
                    "parking_lot_id": lot_id,
                    "vehicle_plate": plate,
                    "vehicle_type": "car",
                    "start_time": (now + timedelta(minutes=1)).isoformat(),
                    "end_time": (now + timedelta(hours=3)).isoformat(),
                },
            )
            if response.status_code == 201:
                booked.append(plate)
            else:
                print(f"  booking {plate} refused: {response.status_code} {response.text[:120]}")
    return booked


def _wait_paid(settings: DemoSettings, token: str, expected: int, timeout: float = 30) -> None:
    """The local provider pays each booking about a second after it is made."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=settings.cloud_url, timeout=10) as client:
        while time.monotonic() < deadline:
            response = client.get("/bookings", headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            body = response.json()
            items = body if isinstance(body, list) else body.get("bookings", [])
            if sum(b["status"] == "confirmed" for b in items) >= expected:
                return
            time.sleep(0.3)
    print("  (some demo bookings are not paid yet; they will open once paid)", flush=True)


def start(settings: DemoSettings, sup: Supervisor) -> dict[str, object]:
    for name, port in (
        ("DEMO_CLOUD_PORT", settings.cloud_port),
        ("DEMO_AGENT_PORT", settings.agent_port),
        ("DEMO_MQTT_PORT", settings.mqtt_port),
    ):
        if not port_is_free(settings.host, port):
            raise DemoError(f"port {port} is in use: stop what uses it or set {name}")
    (settings.state_dir / "logs").mkdir(parents=True)
    broker, cloud_password = secured_demo_broker(settings)
    env = {**os.environ, "PARKGATE_DATABASE_URL": settings.database_url}
    cli = str(VENV_BIN / "cloud-api")

    print("• cloud database and demo data", flush=True)
    run_cli([cli, "migrate"], env)
    demo = json.loads(run_cli([cli, "demo-data", "--json"], env))
    lot_id = demo["lots"][0]["id"]
    tokens = {u["role"]: u["token"] for u in demo["users"]}
    sync = sync_section(
        run_cli(
            [
                cli,
                "provision-lot",
                str(lot_id),
                "--passwd-file",
                str(broker.password_file),
                "--broker-host",
                settings.host,
                "--broker-port",
                str(settings.mqtt_port),
                "--cloud-url",
                settings.cloud_url,
            ],
            env,
        )
    )

    print("• MQTT broker (Mosquitto)", flush=True)
    broker_proc = sup.start("broker", broker.argv, env)
    wait_until(lambda: tcp_open(settings.host, settings.mqtt_port), "the broker", 15, broker_proc)

    print("• cloud API with its outbox worker, and the MQTT relay/ingest", flush=True)
    cloud_env = {
        **env,
        "PARKGATE_PUBLIC_URL": settings.cloud_url,
        "PARKGATE_PAYMENT_PROVIDER": "local",
        "PARKGATE_LOCAL_AUTOPAY_SECONDS": "1",
        "PARKGATE_MQTT_HOST": settings.host,
        "PARKGATE_MQTT_PORT": str(settings.mqtt_port),
        "PARKGATE_MQTT_PASSWORD": cloud_password,
    }
    cloud = sup.start(
        "cloud",
        [
            cli,
            "serve",
            "--host",
            settings.host,
            "--port",
            str(settings.cloud_port),
            "--with-worker",
        ],
        cloud_env,
    )
    wait_until(lambda: http_ok(f"{settings.cloud_url}/docs"), "the cloud API", 60, cloud)
    sup.start("sync", [cli, "sync"], cloud_env)

    print("• lot policy: drive-ups admitted, pay before exit (through the API)", flush=True)
    _set_visitor_policy(settings, tokens["admin"], lot_id)
    photos = photos_by_plate(settings.images)
    plates = list(photos)[::2][:16]  # 24 car spaces: 4 for drive-ups, room for your bookings
    booked = _book(settings, tokens["customer"], lot_id, plates)
    _wait_paid(settings, tokens["customer"], len(booked))
    print(f"• booked and paid {len(booked)} of the plates in {settings.images}", flush=True)
    replay = replay_folder(photos, booked, settings.state_dir / "replay")

    print("• gate agent (entry, exit, pay exit; mock relays) and its status page", flush=True)
    from gate_agent.web.passwords import hash_password

    operator_password = secrets.token_urlsafe(9)
    api_token = tokens["operator"]  # one operator token for the cloud API and the agent API
    agent_config = settings.state_dir / "agent.toml"
    agent_config.write_text(
        _agent_toml(settings, sync, api_token, hash_password(operator_password), replay)
    )
    agent_env = {
        **os.environ,
        "PARKGATE_MODELS_DIR": os.environ.get(
            "PARKGATE_MODELS_DIR", str(ROOT.parent / "shared" / "models")
        ),
    }
    agent = sup.start(
        "agent", [str(VENV_BIN / "gate-agent"), "run", "--config", str(agent_config)], agent_env
    )
    wait_until(lambda: http_ok(f"{settings.agent_url}/healthz"), "the gate agent", 90, agent)

    print("• a drive-up visitor (no booking) drives in and to the pay exit", flush=True)
    gate = AgentApi(settings.agent_url, api_token)
    try:
        visitor = drive_to_the_exit(gate, visitor_candidates(photos, booked))
    finally:
        gate.close()
    return {
        "visitor": visitor,
        "cloud_url": settings.cloud_url,
        "agent_url": settings.agent_url,
        "customer_token": tokens["customer"],
        "operator_token": api_token,
        "admin_token": tokens["admin"],
        "operator_user": OPERATOR_USER,
        "operator_password": operator_password,
        "lot_id": lot_id,
    }


def _visitor_help(settings: DemoSettings, credentials: dict[str, Any]) -> str:
    visitor = credentials["visitor"]
    plate, lot_id = visitor["plate"], credentials["lot_id"]
    return f"""
A drive-up visitor, plate {plate}, is held at the pay exit {visitor["exit_lane"]} and owes \
{visitor["amount_owed_cents"] / 100:.2f} EUR:
  lane display     {settings.agent_url}/display/{visitor["exit_lane"]}   (amount and a pay QR code)
  stays inside     {settings.agent_url}/stays   (status page: what each car owes)
  pay by plate     {settings.cloud_url}/lots/{lot_id}/pay?plate={plate}
                   → Pay → the local pay page → Pay: the exit opens for the car
  or let the scripted driver pay:   DEMO_DIR={settings.state_dir} {sys.executable} -m demo.driver"""


def main() -> int:
    default_images = _dataset_dir() / "us"
    try:
        settings = DemoSettings.from_env(default_images)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    stop_leftovers(settings.state_dir)
    shutil.rmtree(settings.state_dir, ignore_errors=True)  # a second run starts clean
    settings.state_dir.mkdir(parents=True)
    sup = Supervisor(settings.state_dir)
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        credentials = start(settings, sup)
        path = settings.state_dir / "credentials.json"
        path.write_text(json.dumps(credentials, indent=2) + "\n")
        os.chmod(path, 0o600)
        print(
            f"""
ParkGate demo is running (lot {credentials["lot_id"]}):
  cloud API docs   {settings.cloud_url}/docs
  status page      {settings.agent_url}/   user {OPERATOR_USER} / {credentials["operator_password"]}
  customer token   {credentials["customer_token"]}
  operator token   {credentials["operator_token"]}   (cloud API and agent API)
  admin token      {credentials["admin_token"]}
  credentials      {path}
  logs             {settings.state_dir / "logs"}
{_visitor_help(settings, credentials)}
Ctrl-C stops everything.""",
            flush=True,
        )
        while not stopping:
            dead = sup.dead()
            if dead:
                print(
                    f"demo: {', '.join(dead)} stopped unexpectedly; see "
                    f"{settings.state_dir / 'logs'}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.5)
        print("stopping…", flush=True)
        return 0
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        sup.stop()


if __name__ == "__main__":
    raise SystemExit(main())
