"""Booking access codes in camera frames: OpenCV's QR detector on a small grey copy.

The lane asks only on frames whose plates did not open the barrier, at most every
``interval_s`` (a phone held up to the camera stays for seconds), so the plate path's frame →
command time is untouched; ``python -m bench codes`` measures what one look costs. The frame is
turned grey and shrunk to at most ``max_width`` pixels wide for the look; when the detector finds
a code there but cannot decode it, the code's region is cut from the full frame and decoded at
full resolution. Only text shaped like an access code is returned (a QR code on a poster or a
parking ticket is not a booking).
"""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from parkgate_protocol import AccessCodeError, parse_access_code

__all__ = ["CodeReader"]

log = logging.getLogger(__name__)

MARGIN = 0.25  # of the code's size, added around it when it is decoded from the full frame


class CodeReader:
    """Finds access-code QR codes in BGR frames. Thread-safe (one detector, one lock)."""

    def __init__(self, *, max_width: int = 960, interval_s: float = 0.3) -> None:
        if max_width < 160 or interval_s < 0:
            raise ValueError("max_width must be at least 160 and interval_s not negative")
        self.max_width = max_width
        self.interval_s = interval_s
        self._detector = cv2.QRCodeDetectorAruco()
        self._lock = threading.Lock()

    def read(self, image: np.ndarray) -> str | None:
        """The access code shown in the frame, or None."""
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        scale = min(1.0, self.max_width / grey.shape[1])
        small = grey
        if scale < 1.0:
            small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        with self._lock:
            text, points, _ = self._detector.detectAndDecode(small)
            if not text and points is not None and scale < 1.0:
                text = self._decode_region(grey, points.reshape(-1, 2) / scale)
        return _access_code(text)

    def _decode_region(self, grey: np.ndarray, corners: np.ndarray) -> str:
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        pad = MARGIN * max(x1 - x0, y1 - y0)
        height, width = grey.shape[:2]
        left, top = max(0, int(x0 - pad)), max(0, int(y0 - pad))
        right, bottom = min(width, int(x1 + pad)), min(height, int(y1 + pad))
        if right - left < 21 or bottom - top < 21:
            return ""
        text, _, _ = self._detector.detectAndDecode(grey[top:bottom, left:right])
        return str(text)


def _access_code(text: object) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parse_access_code(text)
    except AccessCodeError:
        log.debug("a QR code that is not an access code")
        return None
    return text.strip()
