"""Free ports and waiting with a deadline: readiness is polled, never slept for."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

__all__ = ["free_port", "wait_for", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
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
