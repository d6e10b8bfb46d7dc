"""hardware.images: the size an encoded image claims in its header, and the capped decode."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.errors import InvalidFrameError
from hardware.images import ImageTooLarge, NotAnImage, decode_image, image_size
from tests.attacks.test_agent_images import jpeg_header, png


def encoded(ext: str, width: int, height: int, *params: int) -> bytes:
    ok, data = cv2.imencode(ext, np.zeros((height, width, 3), np.uint8), list(params))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (encoded(".png", 33, 17), (33, 17)),
        (encoded(".jpg", 640, 480), (640, 480)),
        (encoded(".jpg", 70, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (70, 90)),
        (png(32000, 32000, rows=1), (32000, 32000)),
        (jpeg_header(9000, 8000), (9000, 8000)),
        (jpeg_header(0, 8000), None),  # height from a DNL marker: unknown before decoding
        (encoded(".bmp", 8, 8), None),
        (encoded(".jpg", 640, 480)[:20], None),  # cut before the frame header
        (b"\x89PNG\r\n\x1a\n\x00\x00", None),
        (b"", None),
        (b"\xff\xd8\xff", None),
    ],
)
def test_image_size_from_the_header(data: bytes, size: tuple[int, int] | None) -> None:
    assert image_size(data) == size


def test_the_largest_of_several_frame_headers_counts() -> None:
    small = jpeg_header(10, 10)
    big_sof = jpeg_header(9000, 9000)
    sof_at = big_sof.index(b"\xff\xc0")
    sof = big_sof[sof_at : sof_at + 2 + 11]
    sneaky = small[:2] + small[2:].replace(b"\xff\xda", sof + b"\xff\xda", 1)
    assert image_size(sneaky) == (9000, 9000)


def test_dataset_photos_match_what_opencv_decodes(dataset_dir: Path) -> None:
    for path in sorted(dataset_dir.rglob("*.jpg"))[:20]:
        data = path.read_bytes()
        decoded = decode_image(data, 50_000_000)
        assert image_size(data) == (decoded.shape[1], decoded.shape[0]), path


def test_decode_refuses_before_decoding_and_says_why() -> None:
    with pytest.raises(ImageTooLarge, match="32000 x 32000 pixels; at most 1,000,000"):
        decode_image(png(32000, 32000, rows=1), 1_000_000)
    with pytest.raises(NotAnImage, match="JPEG or PNG expected"):
        decode_image(encoded(".bmp", 8, 8), 1_000_000)
    corrupt = png(100, 100)[:33] + b"\x00\x00\x00\x10IDAT" + b"\x07" * 20
    with pytest.raises(NotAnImage, match="could not be decoded"):
        decode_image(corrupt, 1_000_000)
    assert issubclass(ImageTooLarge, InvalidFrameError) and issubclass(NotAnImage, ValueError)
    assert decode_image(encoded(".png", 4, 3), 12).shape == (3, 4, 3)
