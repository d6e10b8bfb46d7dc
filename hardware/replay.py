"""``ReplaySource``: frames from an image folder or a video file, behaving like a camera.

A thread produces frames at ``fps`` into a newest-only slot, exactly like the camera grabber, so
lanes cannot tell the difference. ``fps=0`` produces the next frame as soon as the previous one
was taken (benchmarks: as fast as the consumer reads). :meth:`ReplaySource.inject` makes any image
the newest frame (commissioning uploads, tests); ``path=None`` gives a source fed only by inject().
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from contextlib import closing
from pathlib import Path
from typing import Self

import cv2
import numpy as np

from hardware.errors import CameraError, DeviceClosed, HardwareConfigError, SourceNotFound
from hardware.frames import CameraHealth, Frame, FrameSlot, check_image

__all__ = ["IMAGE_SUFFIXES", "ReplaySource"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


class ReplaySource:
    """Replays ``path`` (a folder of jpg/jpeg/png, sorted by name, or a video file) at ``fps``.

    With ``loop=False`` the last frame stays available after the end and :attr:`exhausted`
    becomes true. Unreadable images are skipped with a warning; a folder without images raises
    :class:`SourceNotFound`, a video that yields no frame raises :class:`CameraError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        name: str = "replay",
        fps: float = 5.0,
        loop: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fps < 0:
            raise HardwareConfigError(f"fps must be >= 0, got {fps}")
        self.name = name
        self.fps = float(fps)
        self.loop = loop
        self.path = Path(path) if path is not None else None
        self.image_paths: list[Path] = []
        self._video: Path | None = None
        self._slot = FrameSlot(clock)
        self._stop = threading.Event()
        self._exhausted = False
        self._next_due = 0.0
        self._thread: threading.Thread | None = None
        if self.path is not None:
            self._scan(self.path)
            self._thread = threading.Thread(target=self._run, name=f"{name}-replay", daemon=True)
        self._slot.note(connected=True)
        if self._thread is not None:
            self._thread.start()

    def _scan(self, path: Path) -> None:
        if path.is_dir():
            self.image_paths = sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not self.image_paths:
                raise SourceNotFound(f"{path} holds no .jpg, .jpeg or .png images")
        elif path.is_file():
            capture = cv2.VideoCapture(str(path))
            try:
                ok = capture.isOpened() and capture.read()[0]
            finally:
                capture.release()
            if not ok:
                raise CameraError(f"{path} is neither an image folder nor a readable video")
            self._video = path
        else:
            raise SourceNotFound(f"replay path {path} does not exist")

    # -- FrameSource -----------------------------------------------------------------------
    def latest(self, newer_than: int = -1, timeout: float = 0.0) -> Frame | None:
        return self._slot.latest(newer_than, timeout)

    def health(self) -> CameraHealth:
        return self._slot.health()

    def inject(self, image: np.ndarray) -> Frame:
        """Make ``image`` (BGR uint8) the newest frame now and return it."""
        if self._stop.is_set():
            raise DeviceClosed(f"{self.name} is closed")
        return self._slot.publish(check_image(image))

    @property
    def exhausted(self) -> bool:
        """True once a non-looping replay has produced its last frame (or found none readable)."""
        return self._exhausted

    def close(self) -> None:
        """Stop the producer thread. Safe to repeat."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._slot.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ReplaySource {self.name} path={self.path} fps={self.fps}>"

    # -- the producer ----------------------------------------------------------------------
    def _run(self) -> None:
        self._next_due = time.monotonic()
        while not self._stop.is_set():
            produced = 0
            with closing(self._one_pass()) as images:
                for image in images:
                    if not self._wait_turn():
                        return
                    self._slot.publish(image)
                    produced += 1
            if self._stop.is_set():
                return
            if produced == 0:
                logger.error("%s: no readable frame in %s", self.name, self.path)
                self._finish(f"no readable frame in {self.path}")
                return
            if not self.loop:
                logger.info("%s: end of replay after %d frames", self.name, produced)
                self._finish("end of replay")
                return

    def _finish(self, reason: str) -> None:
        self._exhausted = True
        self._slot.note(connected=False, error=reason)

    def _one_pass(self) -> Generator[np.ndarray, None, None]:
        """The decoded images of one pass over the source, unreadable ones skipped."""
        if self._video is not None:
            capture = cv2.VideoCapture(str(self._video))
            try:
                while not self._stop.is_set():
                    ok, image = capture.read()
                    if not ok:
                        return
                    yield image
            finally:
                capture.release()
            return
        for path in self.image_paths:
            decoded: np.ndarray | None = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if decoded is None:
                logger.warning("%s: skipping unreadable image %s", self.name, path)
                self._slot.note(error=f"unreadable image {path.name}")
                continue
            yield decoded

    def _wait_turn(self) -> bool:
        """Wait until the next frame is due; False when closed meanwhile."""
        if self.fps == 0:
            while not self._slot.wait_taken(self._stop):
                if self._stop.is_set():
                    return False
            return True
        if self._stop.wait(max(0.0, self._next_due - time.monotonic())):
            return False
        interval = 1.0 / self.fps
        # Keep a steady cadence, but never burst to catch up after a slow decode.
        self._next_due = max(self._next_due + interval, time.monotonic())
        return True
