"""Booking access codes at the cloud: per-lot signing keys and the codes they sign.

- Keys (:func:`signing_key`, :func:`rotate_key`, :func:`wire_keys`): one current key per lot,
  made on first use; a rotation makes a new current key and keeps the old one accepted until its
  retire time. Every change to a lot's keys writes an ``access_keys`` change-feed row (the whole
  set the lot accepts) in the caller's transaction; snapshot pages carry the same set. A key's
  secret leaves the cloud only for its own lot's gate and is never logged.
- Codes (:func:`booking_access_code`, :func:`qr_svg`): a booking's code, signed with its lot's
  current key, valid until the booking's end plus :data:`parkgate_protocol.CODE_SLACK`.

The table is ``lot_access_keys`` (migration ``qr01``).
"""

from cloud_api.access_codes._codes import (
    CodeUnavailable,
    access_code_url,
    booking_access_code,
    qr_svg,
)
from cloud_api.access_codes._keys import (
    DEFAULT_OVERLAP,
    rotate_key,
    signing_key,
    wire_keys,
)
from cloud_api.access_codes._models import LotAccessKey

__all__ = [
    "DEFAULT_OVERLAP",
    "CodeUnavailable",
    "LotAccessKey",
    "access_code_url",
    "booking_access_code",
    "qr_svg",
    "rotate_key",
    "signing_key",
    "wire_keys",
]
