"""Frames, camera health and the ``FrameSource`` protocol, plus the newest-frame slot they share.

A frame source never queues: it holds exactly one frame, the newest, and consumers ask for
"the newest frame newer than the one I already have".
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hardware.errors import InvalidFrameError

__all__ = ["CameraHealth", "Frame", "FrameSlot", "FrameSource", "check_image"]

FPS_WINDOW_SECONDS = 2.0


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured image. ``seq`` increases by one per frame of a source, starting at 1."""

    image: np.ndarray  # BGR (or single-channel grey), uint8, H x W [x 3]
    seq: int
    captured_at: float  # the source's clock (time.monotonic by default)
    wall_time: float  # time.time when captured

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.image.shape)
        return f"Frame(seq={self.seq}, image={shape}, captured_at={self.captured_at:.3f})"


@dataclass(frozen=True)
class CameraHealth:
    connected: bool
    fps: float  # frames per second over the last couple of seconds
    last_frame_age_s: float | None  # None before the first frame
    frames_total: int
    reconnects: int
    last_error: str | None


@runtime_checkable
class FrameSource(Protocol):
    """Where a lane gets its frames from."""

    name: str

    def latest(self, newer_than: int = -1, timeout: float = 0.0) -> Frame | None:
        """The newest frame whose ``seq > newer_than``, waiting up to ``timeout`` seconds."""
        ...

    def health(self) -> CameraHealth: ...

    def close(self) -> None: ...


def check_image(image: object) -> np.ndarray:
    """Return ``image`` if it is a non-empty uint8 grey or 3-channel array, else raise."""
    if not isinstance(image, np.ndarray):
        raise InvalidFrameError(f"expected a numpy image, got {type(image).__name__}")
    ok_shape = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    if not ok_shape or image.size == 0 or image.dtype != np.uint8:
        raise InvalidFrameError(
            f"expected a uint8 HxW or HxWx3 image, got {image.dtype} {image.shape}"
        )
    return image


class FrameSlot:
    """The one newest frame of a source, with waiting, "taken" tracking and fps/health counters.

    Producers call :meth:`publish`; consumers call :meth:`latest`. Thread-safe.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken_seq = 0
        self._closed = False
        self._times: deque[float] = deque()
        self.frames_total = 0
        self.reconnects = 0
        self.connected = False
        self.last_error: str | None = None

    def publish(self, image: np.ndarray) -> Frame:
        with self._cond:
            now = self.clock()
            seq = self._frame.seq + 1 if self._frame is not None else 1
            frame = Frame(image=image, seq=seq, captured_at=now, wall_time=time.time())
            self._frame = frame
            self.frames_total += 1
            self._times.append(now)
            self._trim(now)
            self._cond.notify_all()
            return frame

    def latest(self, newer_than: int = -1, timeout: float = 0.0) -> Frame | None:
        def ready() -> bool:
            return self._closed or (self._frame is not None and self._frame.seq > newer_than)

        with self._cond:
            if timeout > 0:
                self._cond.wait_for(ready, timeout)
            frame = self._frame
            if frame is None or frame.seq <= newer_than:
                return None
            if frame.seq > self._taken_seq:
                self._taken_seq = frame.seq
                self._cond.notify_all()
            return frame

    def wait_taken(self, stop: threading.Event, timeout: float = 0.1) -> bool:
        """Block until the newest frame was handed out (or ``timeout``); True if it was."""
        with self._cond:
            return (
                self._cond.wait_for(
                    lambda: (
                        stop.is_set() or self._frame is None or self._taken_seq >= self._frame.seq
                    ),
                    timeout,
                )
                and not stop.is_set()
            )

    def note(self, *, connected: bool | None = None, error: str | None = None) -> None:
        with self._cond:
            if connected is not None:
                self.connected = connected
            if error is not None:
                self.last_error = error

    def count_reconnect(self) -> None:
        with self._cond:
            self.reconnects += 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self.connected = False
            self._cond.notify_all()

    def health(self) -> CameraHealth:
        with self._cond:
            now = self.clock()
            self._trim(now)
            times = self._times
            fps = 0.0
            if len(times) >= 2 and times[-1] > times[0]:
                fps = (len(times) - 1) / (times[-1] - times[0])
            age = now - self._frame.captured_at if self._frame is not None else None
            return CameraHealth(
                connected=self.connected,
                fps=round(fps, 2),
                last_frame_age_s=age,
                frames_total=self.frames_total,
                reconnects=self.reconnects,
                last_error=self.last_error,
            )

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - FPS_WINDOW_SECONDS:
            self._times.popleft()
