"""Encoded images (JPEG, PNG) from outside: size read from the header, checked, then decoded.

An encoded image says how big it will be before it is decoded; a 400 KB PNG can claim 20,000 x
20,000 pixels and decode to a gigabyte. :func:`decode_image` reads the claimed width and height
from the header (PNG ``IHDR``, JPEG start-of-frame) and refuses the image *before* OpenCV
allocates anything when the pixel count is over the cap. Only JPEG and PNG are accepted: every
other format OpenCV could decode (TIFF, BMP, WebP, ...) is refused, so nothing is decoded whose
size was not checked.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from hardware.errors import InvalidFrameError

__all__ = ["ImageTooLarge", "NotAnImage", "decode_image", "image_size"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers (SOF0-SOF15) hold the frame size; C4 (DHT), C8 (JPG), CC (DAC) do not.
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length field


class NotAnImage(InvalidFrameError):
    """The bytes are not a JPEG or PNG whose size can be read from the header."""


class ImageTooLarge(InvalidFrameError):
    """The header claims more pixels than allowed; nothing was decoded."""

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            f"the image is {width} x {height} pixels; at most {max_pixels:,} pixels are accepted"
        )
        self.width = width
        self.height = height


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The largest frame size of every start-of-frame segment before the first scan."""
    size: tuple[int, int] | None = None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None  # not a marker where one must be
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in JPEG_STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: every frame header is read
            return size
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in JPEG_SOF:
            if i + 9 > len(data) or length < 7:
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            if size is None or width * height > size[0] * size[1]:
                size = (width, height)
        i += 2 + length
    return None  # truncated before the first scan


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` claimed by a JPEG or PNG header, or None for anything else."""
    if data.startswith(PNG_SIGNATURE):
        size = _png_size(data)
    elif data.startswith(JPEG_SOI):
        size = _jpeg_size(data)
    else:
        return None
    if size is None or size[0] == 0 or size[1] == 0:
        return None  # a zero dimension (JPEG DNL) cannot be checked before decoding
    return size


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode a JPEG or PNG to a BGR uint8 array after checking its header's pixel count.

    Raises :class:`NotAnImage` for anything that is not a readable JPEG/PNG, and
    :class:`ImageTooLarge` (before decoding) when width x height is over ``max_pixels``.
    """
    size = image_size(data)
    if size is None:
        raise NotAnImage("the upload is not an image (JPEG or PNG expected)")
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLarge(width, height, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise NotAnImage("the image could not be decoded (corrupt JPEG or PNG)")
    if image.shape[0] * image.shape[1] > max_pixels:  # the decoder saw another size
        raise ImageTooLarge(image.shape[1], image.shape[0], max_pixels)
    return np.asarray(image, dtype=np.uint8)
