"""Cameras: :class:`OpenCVCamera` for a USB index, an RTSP/HTTP URL or a video file.

A daemon grabber thread reads continuously and keeps only the newest frame, so a slow consumer
always gets a fresh image and memory never grows. When opening or reading fails, the thread
reconnects with exponential backoff (``reconnect_min`` doubling up to ``reconnect_max``, reset
after the first good frame). :meth:`OpenCVCamera.health` reports whether frames are flowing.

The shared types (:class:`Frame`, :class:`CameraHealth`, :class:`FrameSource`) live in
:mod:`hardware.frames` and :class:`ReplaySource` in :mod:`hardware.replay`; both are
re-exported here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, Self

import cv2
import numpy as np

from hardware.errors import HardwareConfigError
from hardware.frames import CameraHealth, Frame, FrameSlot, FrameSource
from hardware.replay import ReplaySource

__all__ = ["CameraHealth", "Capture", "Frame", "FrameSource", "OpenCVCamera", "ReplaySource"]

logger = logging.getLogger(__name__)


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the grabber uses (the seam for fakes)."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, Any]: ...

    def release(self) -> None: ...


class OpenCVCamera:
    """A live camera. ``source`` is a USB index (``0``), a URL (``rtsp://...``) or a file path.

    A video file is paced at its own frame rate and reopened at its end (counted as a reconnect),
    so it behaves like a camera. ``capture_factory(source)`` must return a :class:`Capture`.
    """

    def __init__(
        self,
        source: int | str,
        *,
        name: str = "camera",
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        capture_factory: Callable[[Any], Capture] = cv2.VideoCapture,
        clock: Callable[[], float] = time.monotonic,
        join_timeout: float = 2.0,
    ) -> None:
        if not 0 < reconnect_min <= reconnect_max:
            raise HardwareConfigError(
                f"need 0 < reconnect_min <= reconnect_max, got {reconnect_min}, {reconnect_max}"
            )
        self.source = source
        self.name = name
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._capture_factory = capture_factory
        self._join_timeout = join_timeout
        self._slot = FrameSlot(clock)
        self._stop = threading.Event()
        self._is_file = isinstance(source, str) and os.path.isfile(source)
        self._thread = threading.Thread(target=self._run, name=f"{name}-grabber", daemon=True)
        self._thread.start()

    # -- FrameSource -----------------------------------------------------------------------
    def latest(self, newer_than: int = -1, timeout: float = 0.0) -> Frame | None:
        return self._slot.latest(newer_than, timeout)

    def health(self) -> CameraHealth:
        return self._slot.health()

    def close(self) -> None:
        """Stop the grabber thread and release the device. Safe to repeat."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._slot.close()
        if self._thread is not threading.current_thread():
            self._thread.join(self._join_timeout)
            if self._thread.is_alive():  # a blocking read in OpenCV cannot be interrupted
                logger.warning("%s: grabber still blocked in a read; leaving it", self.name)

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<OpenCVCamera {self.name} source={self._display_source()!r}>"

    # -- the grabber -----------------------------------------------------------------------
    def _display_source(self) -> int | str:
        """The source with any password in a URL masked, for logs."""
        src = self.source
        if isinstance(src, str) and "@" in src and "://" in src:
            scheme, rest = src.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return src

    def _run(self) -> None:
        delay = self.reconnect_min
        first = True
        while not self._stop.is_set():
            if not first:
                self._slot.count_reconnect()
            first = False
            capture = self._open()
            if capture is not None:
                try:
                    got_frames = self._grab_until_failure(capture)
                finally:
                    capture.release()
                    self._slot.note(connected=False)
                if got_frames:
                    delay = self.reconnect_min
            if self._stop.is_set():
                break
            logger.info("%s: reconnecting in %.2fs", self.name, delay)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.reconnect_max)

    def _open(self) -> Capture | None:
        try:
            capture = self._capture_factory(self.source)
        except (cv2.error, OSError) as exc:
            self._fail(f"open failed: {exc}")
            return None
        if not capture.isOpened():
            capture.release()
            self._fail(f"cannot open {self._display_source()}")
            return None
        logger.info("%s: opened %s", self.name, self._display_source())
        self._slot.note(connected=True)
        return capture

    def _grab_until_failure(self, capture: Capture) -> bool:
        """Read frames into the slot until a read fails or we are closed; True if any arrived."""
        interval = self._file_interval(capture)
        got_frames = False
        next_due = time.monotonic()
        while not self._stop.is_set():
            try:
                ok, image = capture.read()
            except cv2.error as exc:
                self._fail(f"read failed: {exc}")
                return got_frames
            if not ok or not isinstance(image, np.ndarray) or image.size == 0:
                if self._is_file:
                    logger.info("%s: end of %s, reopening", self.name, self.source)
                    self._slot.note(error="end of stream")
                else:
                    self._fail("read failed: no frame")
                return got_frames
            self._slot.publish(image)
            got_frames = True
            if interval:
                next_due += interval
                if self._stop.wait(max(0.0, next_due - time.monotonic())):
                    break
        return got_frames

    def _file_interval(self, capture: Capture) -> float:
        if not self._is_file:
            return 0.0
        get = getattr(capture, "get", None)
        fps = float(get(cv2.CAP_PROP_FPS)) if get is not None else 0.0
        return 1.0 / fps if fps > 0 else 0.0

    def _fail(self, message: str) -> None:
        logger.warning("%s: %s", self.name, message)
        self._slot.note(error=message)
