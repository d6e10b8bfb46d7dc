"""Plates as the cloud stores them: upper case letters and digits, 2 to 12 of them."""

from __future__ import annotations

import re

from cloud_api.errors import InvalidRequest

__all__ = ["normalise_plate"]

_PLATE_RE = re.compile(r"^[A-Z0-9]{2,12}$")


def normalise_plate(raw: str) -> str:
    """Upper case without spaces or dashes; ``InvalidRequest`` unless 2–12 letters/digits remain."""
    plate = re.sub(r"[\s\-]", "", raw).upper()
    if not _PLATE_RE.match(plate):
        raise InvalidRequest("invalid_plate", "plate must be 2-12 letters or digits")
    return plate
