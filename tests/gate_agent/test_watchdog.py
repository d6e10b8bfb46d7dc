"""sd_notify: READY=1, WATCHDOG=1 while the lanes tick, silence when a lane hangs, STOPPING=1."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from gate_agent.app import Agent, build_agent, supervise
from gate_agent.config import parse_config
from gate_agent.recognition import Recognizer
from gate_agent.watchdog import Notifier, Watchdog

WATCHDOG_USEC = 600_000  # keep-alive every 0.3 s, a lane silent for 0.6 s is hung


class HangingAlpr:
    """A plate detector that finds nothing, and blocks inside ``predict`` once told to hang."""

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.release = threading.Event()
        self.hung = threading.Event()
        self.frames = 0

    def predict(self, frame: np.ndarray) -> list[object]:
        self.frames += 1
        if self.hang.is_set():
            self.hung.set()
            self.release.wait(30)
        return []


class NotifyListener:
    """The test's stand-in for systemd: a datagram socket collecting notify messages."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages: list[tuple[float, str]] = []

    def receive(self, timeout: float) -> str | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        self.messages.append((time.monotonic(), data))
        return data

    def wait_for(self, wanted: str, timeout: float = 10.0) -> str:
        """The next message with a line starting with ``wanted``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and any(
                line.startswith(wanted) for line in message.splitlines()
            ):
                return message
        raise AssertionError(f"no {wanted!r} within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    sock = NotifyListener(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


def test_notifier_speaks_to_abstract_sockets() -> None:
    name = f"parkgate-test-{os.getpid()}"
    listener = NotifyListener("\0" + name)
    try:
        notifier = Notifier("@" + name)
        assert notifier.notify("READY=1", "STATUS=hello")
        assert listener.receive(5) == "READY=1\nSTATUS=hello"
        notifier.close()
    finally:
        listener.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    watchdog = Watchdog.for_agent([], environ={})
    assert not watchdog.notifier.enabled
    assert watchdog.watchdog_seconds is None
    assert not watchdog.ready("x")
    assert not watchdog.keepalive()


def test_watchdog_period_from_the_environment(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "s"), "WATCHDOG_USEC": "30000000"}
    watchdog = Watchdog.for_agent([], environ=env)
    assert watchdog.watchdog_seconds == 30
    assert watchdog.stall_seconds == 30
    assert watchdog.interval == 1.0
    other = Watchdog.for_agent([], environ={**env, "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_seconds is None  # the keep-alives are another process's job


def agent_config(tmp_path: Path) -> dict[str, object]:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.jpg"), np.full((48, 64, 3), 40 * i, dtype=np.uint8))
    return {
        "lot": {"id": "lot-wd", "data_dir": str(tmp_path / "data")},
        "web": {"enabled": False},
        "lanes": [
            {
                "id": lane_id,
                "direction": direction,
                "camera": {"kind": "replay", "path": str(frames), "fps": 20},
                "barrier": {"kind": "dry-run", "pulse_seconds": 0.1},
            }
            for lane_id, direction in (("entry-1", "entry"), ("exit-1", "exit"))
        ],
    }


def test_keepalives_while_lanes_tick_and_silence_when_one_hangs(
    tmp_path: Path, listener: NotifyListener
) -> None:
    alpr = HangingAlpr()
    agent: Agent = build_agent(parse_config(agent_config(tmp_path)), recognizer=Recognizer(alpr))
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    watchdog = Watchdog.for_agent(agent.lanes.values(), environ=env)
    main = threading.Thread(target=supervise, args=(agent.start(), watchdog), name="main-loop")
    main.start()
    try:
        ready = listener.wait_for("READY=1")
        assert "STATUS=lot lot-wd: 2 lane(s) running" in ready.splitlines()
        for _ in range(3):
            listener.wait_for("WATCHDOG=1", timeout=5)
        assert alpr.frames > 0

        alpr.hang.set()  # the next frame blocks one lane inside inference
        assert alpr.hung.wait(10)
        # the recognizer is shared (and serialised), so the other lane waits behind it too
        listener.wait_for("STATUS=lane(s) hung: ", timeout=10)
        silence_from = time.monotonic()
        # Absence can only be shown by listening: 5 keep-alive periods with no WATCHDOG=1.
        while time.monotonic() - silence_from < 5 * WATCHDOG_USEC / 1e6 / 2:
            message = listener.receive(0.1)
            assert message is None or "WATCHDOG=1" not in message.splitlines(), message
    finally:
        alpr.release.set()
        agent.request_stop()
        main.join(10)
    assert not main.is_alive()
    listener.wait_for("STOPPING=1", timeout=5)
