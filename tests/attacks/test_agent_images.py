"""Issue 14 finding 3: image decompression bombs are refused from their header, before decoding.

A small PNG or JPEG can claim a huge size; before the fix OpenCV decoded whatever an operator or
API token uploaded (a 389 KB PNG became a 1.1 GB array in the process that runs the lanes). Now
the claimed width x height is read from the header and over ``web.max_image_pixels`` the upload
is refused with 413 and a reason, on both upload routes, without decoding.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import httpx
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from gate_agent.app import Agent
from tests.attacks.conftest import API_TOKEN, LANE, csrf_of, logged_in, pulses


def png(width: int, height: int, rows: int | None = None) -> bytes:
    """A grey PNG claiming ``width`` x ``height``; ``rows`` of zero pixels actually encoded
    (all of them by default: a real, highly compressible bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = (b"\x00" + b"\x00" * width) * (height if rows is None else rows)
    idat = zlib.compress(raw, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_header(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A JPEG whose start-of-frame claims ``width`` x ``height`` (the scan is cut short)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff" + (b"\xc2" if progressive else b"\xc0")
    sof += struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + b"\x01" * 64
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + app0 + dqt + sof + sos + b"\x00" * 256 + b"\xff\xd9"


BOMBS = {
    "png-real-30mpx": png(6000, 5000),  # ~90 KB that decodes to 90 MB of BGR
    "png-claims-1gpx": png(32000, 32000, rows=4),
    "jpeg-claims-64mpx": jpeg_header(8000, 8000),
    "jpeg-progressive-claims-400mpx": jpeg_header(20000, 20000, progressive=True),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_api_refuses_image_bombs_from_the_header(
    base_url: str, running_agent: Agent, pins: MockFactory, name: str
) -> None:
    response = httpx.post(
        f"{base_url}/api/lanes/{LANE}/frames",
        files={"image": (f"{name}.img", BOMBS[name], "application/octet-stream")},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "pixels" in detail and "at most 25,000,000" in detail
    assert pulses(pins) == 0 and running_agent.store.events() == []


def test_the_commissioning_form_refuses_a_bomb_too(base_url: str, pins: MockFactory) -> None:
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        assert logged_in(client).status_code == 303
        token = csrf_of(client.get("/").text)
        response = client.post(
            f"/lanes/{LANE}/evaluate",
            data={"csrf": token, "act": "1"},
            files={"image": ("bomb.png", BOMBS["png-real-30mpx"], "image/png")},
        )
    assert response.status_code == 413 and "6000 x 5000 pixels" in response.text
    assert pulses(pins) == 0


def test_other_formats_are_refused_since_their_size_is_not_checked(base_url: str) -> None:
    ok, bmp = cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))
    assert ok
    response = httpx.post(
        f"{base_url}/api/lanes/{LANE}/frames",
        files={"image": ("x.bmp", bmp.tobytes(), "image/bmp")},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    assert response.status_code == 422 and "JPEG or PNG" in response.json()["detail"]
