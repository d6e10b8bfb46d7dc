"""The processes of a whole lot on one machine, and how they are started and stopped.

Every piece runs as the real command an operator would run (``mosquitto``, ``cloud-api serve``,
``cloud-api sync``, ``gate-agent run``), configured through the same files and environment
variables as in production; this module only writes those files and supervises the processes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cloud_api.settings import INGEST_USER, RELAY_USER
from devservices import REPO_ROOT, MissingBinary, MosquittoInstance, secured_broker

ROOT = REPO_ROOT
VENV_BIN = Path(sys.executable).parent


class DemoError(RuntimeError):
    """The demo cannot start; the message says what to do."""


@dataclass(frozen=True)
class DemoSettings:
    state_dir: Path
    images: Path
    cloud_port: int
    agent_port: int
    mqtt_port: int
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, default_images: Path) -> DemoSettings:
        env = os.environ

        def port(name: str, default: int) -> int:
            value = env.get(name, str(default))
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise DemoError(f"{name} must be a TCP port number, not {value!r}")
            return int(value)

        images = Path(env["DEMO_IMAGES"]) if env.get("DEMO_IMAGES") else default_images
        if not images.is_dir():
            raise DemoError(f"image folder {images} not found: set DEMO_IMAGES to a folder")
        return cls(
            state_dir=Path(env.get("DEMO_DIR", ROOT / ".demo")).resolve(),
            images=images.resolve(),
            cloud_port=port("DEMO_CLOUD_PORT", 8000),
            agent_port=port("DEMO_AGENT_PORT", 8080),
            mqtt_port=port("DEMO_MQTT_PORT", 18830),
        )

    @property
    def cloud_url(self) -> str:
        return f"http://{self.host}:{self.cloud_port}"

    @property
    def agent_url(self) -> str:
        return f"http://{self.host}:{self.agent_port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.state_dir / 'cloud.sqlite3'}"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(check: object, what: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"{what} exited with code {proc.returncode}; see its log")
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise DemoError(f"{what} did not come up within {timeout:.0f} s; see its log")


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


def tcp_open(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=0.5):
        return True


@dataclass
class Supervisor:
    """Starts processes with logs under the state dir; stops them in reverse order."""

    state_dir: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pids.json"

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.state_dir / "logs" / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops children in order
        )
        log.close()
        self.procs.append((name, proc))
        self.pid_file.write_text(json.dumps({n: p.pid for n, p in self.procs}))
        return proc

    def dead(self) -> list[str]:
        return [name for name, proc in self.procs if proc.poll() is not None]

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    print(f"  {name} did not stop in 15 s: killed", flush=True)
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        self.pid_file.unlink(missing_ok=True)


def stop_leftovers(state_dir: Path) -> None:
    """A previous demo that was killed may have left its processes running: stop them."""
    pid_file = state_dir / "pids.json"
    try:
        pids = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return
    for name, pid in pids.items():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone
        if str(state_dir) in cmdline or name in ("cloud", "sync", "agent", "broker"):
            print(f"stopping leftover {name} (pid {pid}) from a previous run", flush=True)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)


def run_cli(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise DemoError(f"{' '.join(argv[:3])} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def secured_demo_broker(settings: DemoSettings) -> tuple[MosquittoInstance, str]:
    """The broker secured like production (no anonymous clients, the shipped per-lot ACL), built
    the way the tests build theirs; not started. Returns it and the cloud's MQTT password; each
    lot's entry is appended to ``broker.password_file`` by ``cloud-api provision-lot``."""
    cloud_password = secrets.token_urlsafe(18)
    try:
        broker = secured_broker(
            settings.state_dir / "mqtt",
            {RELAY_USER: cloud_password, INGEST_USER: cloud_password},
            port=settings.mqtt_port,
        )
    except MissingBinary as exc:
        raise DemoError(
            f"Mosquitto is not installed ({exc}): `make demo` installs it with apt where it can "
            "(scripts/ensure-system-deps.sh)"
        ) from None
    return broker, cloud_password


def sync_section(provision_output: str) -> dict[str, object]:
    data = tomllib.loads(provision_output)
    section = data.get("sync")
    if not isinstance(section, dict):
        raise DemoError("cloud-api provision-lot printed no [sync] section")
    return section
