"""The cloud API as an operator runs it (``cloud-api serve`` in a subprocess on a free port), and
a seeded world of lots and users to call it with."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.models import Role, Space
from cloud_api.seed import add_lot, add_user
from devservices._process import REPO_ROOT
from devservices._wait import free_port, wait_for

__all__ = ["World", "running_server", "seed_world", "serve_process"]


@dataclass
class World:
    lot_id: int
    other_lot_id: int
    space_ids: list[int]
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def seed_world(database_url: str, spaces: dict[str, int] | None = None) -> World:
    """Two lots; customers alice and bob; operator, device and admin of the first lot."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as s:
        lot = add_lot(s, "Main", spaces or {"car": 3, "ev": 1}, early_exit_policy="pro_rata")
        other = add_lot(
            s, "Other", {"car": 1}, latitude=48.85, longitude=2.35, country="FR", city="Paris"
        )
        users = {
            "alice": add_user(s, "alice@example.test", Role.CUSTOMER),
            "bob": add_user(s, "bob@example.test", Role.CUSTOMER),
            "operator": add_user(s, "op@example.test", Role.OPERATOR, lots=(lot.id,)),
            "other_operator": add_user(s, "op2@example.test", Role.OPERATOR, lots=(other.id,)),
            "device": add_user(s, "gate@example.test", Role.DEVICE, lots=(lot.id,)),
            "other_device": add_user(s, "gate2@example.test", Role.DEVICE, lots=(other.id,)),
            "admin": add_user(s, "admin@example.test", Role.ADMIN),
        }
        s.commit()
        space_ids = list(
            s.scalars(select(Space.id).where(Space.lot_id == lot.id).order_by(Space.id))
        )
        world = World(lot.id, other.id, space_ids, {k: v.token for k, v in users.items()})
    engine.dispose()
    return world


@contextmanager
def running_server(
    database_url: str, *, workers: int = 1, redis_url: str | None = None
) -> Iterator[str]:
    """``cloud-api serve`` as a subprocess on a free port; yields its base URL."""
    with serve_process(database_url, workers=workers, redis_url=redis_url) as (_proc, base):
        yield base


@contextmanager
def serve_process(
    database_url: str, *, workers: int = 1, redis_url: str | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``cloud-api serve`` as a subprocess on a free port; yields the process and its base URL."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "cloud_api.cli",
        "serve",
        "--database-url",
        database_url,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if redis_url:
        cmd += ["--redis-url", redis_url]
    env = {**os.environ, "PARKGATE_HOLD_SWEEP_SECONDS": "0"}
    # its log (a line per booking at INFO) goes to a file: a pipe nobody reads fills at 64 KB
    # and then blocks the server's every log call
    with tempfile.TemporaryFile() as server_log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=server_log
        )
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if proc.poll() is not None:
                server_log.seek(0)
                raise RuntimeError(server_log.read().decode(errors="replace") or "exited")
            return httpx.get(base + "/openapi.json", timeout=1).status_code == 200

        try:
            wait_for(up, timeout=30, what="cloud-api serve")
            yield proc, base
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
