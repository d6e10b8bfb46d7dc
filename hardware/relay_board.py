"""A simulated LCUS/CH340 USB relay board on a pseudo-terminal, for tests and the demo.

The board opens a pty pair, hands out the slave path as :attr:`SimulatedRelayBoard.port` (give it
to :class:`~hardware.barrier.SerialRelayBarrier`), and parses frames on the master side in a
thread. Frames with a bad checksum, an unknown state or an out-of-range channel are counted in
:attr:`bad_frames` and ignored, as a real board ignores them.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from typing import Self

from hardware import lcus
from hardware.errors import HardwareConfigError

__all__ = ["SimulatedRelayBoard"]

logger = logging.getLogger(__name__)


class SimulatedRelayBoard:
    """A relay board with ``channels`` relays, all off at start.

    ``history`` lists ``(time.monotonic, channel, state)`` for every relay *change*;
    ``frames`` lists every valid frame received, including repeats that changed nothing.
    """

    def __init__(self, *, channels: int = 8, name: str = "relay-board") -> None:
        if not 1 <= channels <= lcus.MAX_CHANNEL:
            raise HardwareConfigError(f"channels must be 1..{lcus.MAX_CHANNEL}, got {channels}")
        self.channels = channels
        self.name = name
        self.bad_frames = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._states = dict.fromkeys(range(1, channels + 1), 0)
        self._history: list[tuple[float, int, int]] = []
        self._frames: list[tuple[float, int, int]] = []
        self._buffer = bytearray()
        self._closed = False
        self._master, self._slave = os.openpty()
        # Keep the slave open ourselves: the master then never sees a hang-up when the driver
        # closes and reopens the port. Raw mode: no newline translation, no echo.
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"{name}-reader", daemon=True)
        self._thread.start()
        logger.info("%s: simulated relay board on %s", name, self.port)

    # -- observations ----------------------------------------------------------------------
    def state(self, channel: int) -> int:
        """1 if relay ``channel`` is on, else 0."""
        if channel not in self._states:
            raise HardwareConfigError(f"no relay channel {channel} on this board")
        with self._lock:
            return self._states[channel]

    @property
    def history(self) -> list[tuple[float, int, int]]:
        with self._lock:
            return list(self._history)

    @property
    def frames(self) -> list[tuple[float, int, int]]:
        with self._lock:
            return list(self._frames)

    def wait_for_state(self, channel: int, state: int, timeout: float = 5.0) -> bool:
        """Block until relay ``channel`` is in ``state``; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._states[channel] == state, timeout)

    # -- the reader thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(self._master, 1024)
            except OSError as exc:
                logger.warning("%s: read failed: %s", self.name, exc)
                return
            if not data:
                return
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buffer
        buf.extend(data)
        with self._changed:
            while buf:
                start = buf.find(lcus.HEADER)
                if start < 0:
                    logger.debug("%s: dropping %d stray bytes", self.name, len(buf))
                    buf.clear()
                    break
                del buf[:start]
                if len(buf) < lcus.FRAME_LENGTH:
                    break
                decoded = lcus.decode_frame(bytes(buf[: lcus.FRAME_LENGTH]))
                if decoded is None or decoded[0] > self.channels:
                    self.bad_frames += 1
                    logger.warning("%s: ignoring bad frame %s", self.name, buf[:4].hex(" "))
                    del buf[:1]  # resynchronise on the next header byte
                    continue
                del buf[: lcus.FRAME_LENGTH]
                channel, state = decoded
                self._frames.append((now, channel, state))
                if self._states[channel] != state:
                    self._states[channel] = state
                    self._history.append((now, channel, state))
                    logger.debug("%s: relay %d -> %d", self.name, channel, state)
            self._changed.notify_all()

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the reader and remove the pty (the port disappears). Safe to repeat."""
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SimulatedRelayBoard {self.port} states={self._states}>"
