"""A private PostgreSQL cluster: tests trade durability for speed, the bench runs durable.

The server's log goes to a file in its workdir (:attr:`PostgresInstance.log`), never to a pipe:
nobody reads a pipe while the server runs, and once its 64 KB filled up every backend that logs
(an ERROR for each unique violation: a duplicate gate event, a replayed webhook) blocked in
``write(2)`` for good, holding its transaction open. That hung the whole-chain chaos test's
ingest and API (``tests/test_services.py`` keeps it from coming back)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import IO

from devservices._process import find_binary, stop_process
from devservices._wait import free_port, wait_for

__all__ = ["PostgresInstance"]


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
        bindirs = ("/usr/lib/postgresql/*/bin",)
        self.initdb = find_binary("initdb", "postgresql", bindirs)
        self.postgres = find_binary("postgres", "postgresql", bindirs)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self._owned_tmp = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="parkgate-pg-"))
        self.datadir = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self.log = self.workdir / "postgres.log"
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
        with self.log.open("ab") as server_log:  # the child keeps its own descriptor
            self.proc = self._spawn(server_log)
        try:
            wait_for(self._ready, timeout=30, what="postgres to accept queries")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"postgres did not start: {self.log_text()}") from None
        return self

    def _spawn(self, server_log: IO[bytes]) -> subprocess.Popen[bytes]:
        # as root the server runs as the postgres user straight from Popen, not under runuser:
        # runuser does not pass SIGINT on, so every stop waited out its timeout (20 s)
        user = "postgres" if self._as_user else None
        return subprocess.Popen(
            [
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
            stderr=server_log,
            user=user,
            group=user,
        )

    def log_text(self) -> str:
        """The server's log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

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
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, timeout=20)  # SIGINT: fast shutdown
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._owned_tmp:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostgresInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
