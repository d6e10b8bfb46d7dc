"""Booking access codes for tests: a lot's keys, signed codes, and QR codes drawn onto photos
(printed flat, or shown on a phone screen held up to the camera: tilted, blurred, with glare)."""

from __future__ import annotations

from datetime import datetime

from bench.qr_photos import on_phone, pasted, qr_image
from parkgate_protocol import SigningKey, sign_access_code

__all__ = ["KEY", "OTHER_KEY", "code_for", "on_phone", "pasted", "qr_image"]

KEY = SigningKey("k1", bytes(range(32)))
OTHER_KEY = SigningKey("k1", bytes(range(1, 33)))  # the same key id, another secret: a forgery


def code_for(
    booking_id: str, expires_at: datetime, *, lot_id: str = "lot-1", key: SigningKey = KEY
) -> str:
    return sign_access_code(key, lot_id=lot_id, booking_id=booking_id, expires_at=expires_at)
