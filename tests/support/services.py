"""Private instances of the real services the tests talk to.

Each instance runs from the installed binaries in a temporary directory on a free port, and can be
stopped and started again on the same port and data (the chaos and partition tests need that).
Readiness is polled with a deadline, never slept for.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "MosquittoInstance",
    "PostgresInstance",
    "RedisInstance",
    "free_port",
    "wait_for",
    "wait_for_port",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> object:
    """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as exc:  # the predicate may fail while the thing starts
            last_exc = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from last_exc


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    def connects() -> bool:
        with socket.create_connection((host, port), timeout=0.2):
            return True

    wait_for(connects, timeout=timeout, what=f"{host}:{port} to accept connections")


def _find_binary(name: str, extra_dirs: list[str]) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        for candidate in sorted(Path("/").glob(d.lstrip("/")), reverse=True):
            path = candidate / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return None


class MosquittoInstance:
    """A private Mosquitto broker.

    ``extra_config`` is appended to the generated config (listeners, auth, ACL). Without it the
    broker allows anonymous clients on 127.0.0.1:``port``.
    """

    def __init__(
        self, workdir: Path, port: int | None = None, extra_config: str = "", anonymous: bool = True
    ) -> None:
        binary = _find_binary("mosquitto", ["/usr/sbin"])
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [
            "user root",  # we run as root in CI; keep the broker able to read our temp files
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            "persistence true",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
            extra_config,
        ]
        if os.geteuid() != 0:
            lines.pop(0)
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MosquittoInstance:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.port, timeout=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log_text()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def __enter__(self) -> MosquittoInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisInstance:
    """A private ``redis-server`` without persistence (``--save ''``) on a free port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = _find_binary("redis-server", ["/usr/bin", "/usr/sbin"])
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisInstance:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, timeout=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError("redis-server did not start") from None
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> RedisInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PostgresInstance:
    """A private PostgreSQL cluster, run as the ``postgres`` user when we are root."""

    def __init__(
        self,
        workdir: Path | None = None,
        port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        # tests trade durability for speed; ``settings`` overrides (the bench runs durable)
        self.settings = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "128MB",
        }
        self.settings.update(settings or {})
        bindirs = ["/usr/lib/postgresql/*/bin"]
        initdb = _find_binary("initdb", bindirs)
        postgres = _find_binary("postgres", bindirs)
        if initdb is None or postgres is None:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.initdb, self.postgres = initdb, postgres
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self._owned_tmp = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="parkgate-pg-"))
        self.datadir = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _chown(self, path: Path) -> None:
        if self._as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self) -> PostgresInstance:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self._chown(self.workdir)
        if not (self.datadir / "PG_VERSION").exists():
            self.sockdir.mkdir(exist_ok=True)
            self._chown(self.sockdir)
            subprocess.run(
                [
                    *self._as_user,
                    self.initdb,
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
            )
        self.proc = subprocess.Popen(
            [
                *self._as_user,
                self.postgres,
                "-D",
                str(self.datadir),
                "-p",
                str(self.port),
                "-h",
                self.host,
                "-k",
                str(self.sockdir),
                *(arg for k, v in self.settings.items() for arg in ("-c", f"{k}={v}")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(self._ready, timeout=30, what="postgres to accept queries")
        except TimeoutError:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"postgres did not start: {err}") from None
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("postgres exited")
        import psycopg

        with psycopg.connect(self.dsn("postgres"), connect_timeout=1) as conn:
            conn.execute("select 1")
        return True

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._owned_tmp:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostgresInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresInstance]:
    with PostgresInstance() as pg:
        yield pg
