"""systemd readiness and watchdog keep-alives (``sd_notify``) without extra dependencies.

systemd hands a ``Type=notify`` service the address of a datagram socket in ``$NOTIFY_SOCKET`` (a
path, or ``@name`` for the abstract namespace) and, with ``WatchdogSec=``, the period in
``$WATCHDOG_USEC``. :class:`Notifier` sends ``KEY=value`` lines there; without the variable (run by
hand, in tests) every send is a no-op.

:class:`Watchdog` is driven by the agent's main loop: ``READY=1`` once the lanes run, then
``WATCHDOG=1`` every half period *only while every lane loop has ticked recently*. A lane whose
thread is stuck (a camera read or an inference call that never returns) or has died stops the
keep-alives, and systemd kills and restarts the agent after ``WatchdogSec``: a hung gate is worse
than a restart, because the barrier only opens on a decision. ``STOPPING=1`` goes out on shutdown.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping

from gate_agent.lane import Lane

__all__ = ["DEFAULT_STALL_SECONDS", "Notifier", "Watchdog"]

log = logging.getLogger(__name__)

DEFAULT_STALL_SECONDS = 30.0  # a lane loop silent this long is hung (without WATCHDOG_USEC)
DEFAULT_INTERVAL_SECONDS = 1.0  # main loop period when systemd asked for no watchdog


class Notifier:
    """Sends ``sd_notify`` messages to ``address`` (``$NOTIFY_SOCKET``); no-op when None."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; False when disabled or the send failed."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode("utf-8"), target)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Watchdog:
    """Readiness, status and keep-alives for one agent; see the module docstring."""

    def __init__(
        self,
        notifier: Notifier,
        lanes: Iterable[Lane],
        *,
        watchdog_seconds: float | None = None,
        stall_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.lanes = list(lanes)
        self.watchdog_seconds = watchdog_seconds
        # A lane may take a few seconds for one frame on a Pi (first inference warms up); a lane
        # silent for the whole watchdog period is hung.
        self.stall_seconds = stall_seconds or watchdog_seconds or DEFAULT_STALL_SECONDS
        self._clock = clock
        self._since = clock()  # a lane that never ticked is measured from here
        self._stalled: tuple[str, ...] = ()

    @classmethod
    def for_agent(cls, lanes: Iterable[Lane], environ: Mapping[str, str] | None = None) -> Watchdog:
        """From systemd's environment: ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` (if any)."""
        env = os.environ if environ is None else environ
        usec = env.get("WATCHDOG_USEC", "")
        seconds = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else None
        wanted = env.get("WATCHDOG_PID", "")
        if seconds is not None and wanted.isdigit() and int(wanted) != os.getpid():
            seconds = None  # the keep-alives are expected from another process
        return cls(Notifier.from_env(env), lanes, watchdog_seconds=seconds)

    @property
    def interval(self) -> float:
        """How often the main loop should call :meth:`keepalive` (half the watchdog period)."""
        if self.watchdog_seconds is None:
            return DEFAULT_INTERVAL_SECONDS
        return min(DEFAULT_INTERVAL_SECONDS, self.watchdog_seconds / 2)

    def stalled_lanes(self) -> list[str]:
        """Lanes whose loop has not ticked for more than ``stall_seconds``."""
        now = self._clock()
        stalled = []
        for lane in self.lanes:
            tick = lane.status.loop_tick_at
            if now - (tick if tick is not None else self._since) > self.stall_seconds:
                stalled.append(lane.lane_id)
        return stalled

    def ready(self, status: str) -> bool:
        log.info("ready: %s", status)
        return self.notifier.notify("READY=1", f"STATUS={status}")

    def keepalive(self) -> bool:
        """Send ``WATCHDOG=1`` if every lane loop is alive; True when it was sent."""
        stalled = tuple(self.stalled_lanes())
        if stalled != self._stalled:
            if stalled:
                log.error(
                    "lane loop(s) %s silent for over %.0f s: withholding the watchdog keep-alive",
                    ", ".join(stalled),
                    self.stall_seconds,
                )
                self.notifier.notify(f"STATUS=lane(s) hung: {', '.join(stalled)}")
            else:
                log.info("every lane loop is ticking again")
                self.notifier.notify(f"STATUS={len(self.lanes)} lane(s) running")
            self._stalled = stalled
        if stalled:
            return False
        return self.notifier.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        self.notifier.close()
