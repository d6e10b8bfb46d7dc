"""A booking's access code and its QR image."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import qrcode
import qrcode.image.svg
from sqlalchemy.orm import Session

from cloud_api.access_codes._keys import signing_key
from cloud_api.errors import Conflict
from cloud_api.models import ACTIVE_STATUSES, Booking
from parkgate_protocol import CODE_SLACK, sign_access_code

__all__ = ["CodeUnavailable", "access_code_url", "booking_access_code", "qr_svg"]


class CodeUnavailable(Conflict):
    """The booking cannot have a code (cancelled, finished, or past its end)."""


def booking_access_code(session: Session, booking: Booking, now: datetime) -> str:
    """The code that opens the booking's lot for it: signed with the lot's current key (made
    on first use), valid until the booking's end plus ``CODE_SLACK``. An extended booking gets a
    longer code when asked again. The caller commits (a first key is a change-feed row)."""
    expires = booking.end_time + CODE_SLACK
    if booking.status not in ACTIVE_STATUSES or now > expires:
        raise CodeUnavailable(
            "code_unavailable", f"booking {booking.id} is {booking.status}: no access code"
        )
    key = signing_key(session, booking.lot_id, now)
    return sign_access_code(
        key, lot_id=str(booking.lot_id), booking_id=booking.id, expires_at=expires
    )


def access_code_url(booking_id: str) -> str:
    """The API route that answers the booking's code and QR (the owner's bearer token)."""
    return f"/bookings/{booking_id}/access-code"


@lru_cache(maxsize=256)
def qr_svg(code: str) -> str:
    """The code as an SVG QR code (medium error correction: a phone screen's glare and a
    camera's blur still read)."""
    image = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    image.add_data(code)
    svg = image.make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return str(svg.to_string(encoding="unicode"))
