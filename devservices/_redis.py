"""A private ``redis-server`` for the near-cache tests and the bench."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devservices._process import find_binary, stop_process
from devservices._wait import free_port, wait_for_port

__all__ = ["RedisInstance"]


class RedisInstance:
    """A private ``redis-server`` without persistence (``--save ''``) on a free port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = find_binary("redis-server", "redis-server", ("/usr/sbin",))
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
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> RedisInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
