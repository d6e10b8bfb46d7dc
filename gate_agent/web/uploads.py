"""Photo uploads (the commissioning form and ``POST /api/lanes/{id}/frames``): read, check, act.

The body was already capped by :mod:`gate_agent.web.limits` before anything was parsed; here the
image's header is checked for its pixel count before it is decoded
(:func:`hardware.images.decode_image`). An upload that acts (journals and may open the barrier)
is audited first, like a manual open (who, which lane, why): when the audit row cannot be written
the photo is not acted on.
"""

from __future__ import annotations

import logging

import numpy as np
from fastapi import HTTPException, UploadFile

from gate_agent.config import WebConfig
from gate_agent.lane import Lane, LaneOutcome
from gate_agent.store import Store
from hardware.images import ImageTooLarge, NotAnImage, decode_image

__all__ = ["DEFAULT_REASON", "act_on_photo", "read_upload", "upload_reason"]

log = logging.getLogger(__name__)

DEFAULT_REASON = "commissioning photo upload"
MAX_REASON = 500


def read_upload(upload: UploadFile, web: WebConfig) -> np.ndarray:
    """The uploaded file as an image array; 413 when too big, 422 when not a JPEG/PNG."""
    data = upload.file.read(web.max_upload_bytes + 1)
    if len(data) > web.max_upload_bytes:
        raise HTTPException(413, f"the image is larger than {web.max_upload_bytes:,} bytes")
    try:
        return decode_image(data, web.max_image_pixels)
    except ImageTooLarge as exc:
        raise HTTPException(413, str(exc)) from exc
    except NotAnImage as exc:
        raise HTTPException(422, str(exc)) from exc


def upload_reason(reason: str | None) -> str:
    """The audit reason of an acting upload (a default when none was given); 400 when too long."""
    reason = (reason or "").strip() or DEFAULT_REASON
    if len(reason) > MAX_REASON:
        raise HTTPException(400, f"the reason is too long ({MAX_REASON} characters at most)")
    return reason


def act_on_photo(
    store: Store, lane: Lane, photo: np.ndarray, *, actor: str, reason: str, via: str
) -> LaneOutcome:
    """Audit, then run ``photo`` through ``lane`` as a camera frame and act on the decision."""
    store.audit(actor, "photo_upload", reason, lane_id=lane.lane_id, detail={"via": via})
    outcome = lane.evaluate_image(photo, act=True)
    log.info(
        "photo upload on lane %s by %s acted: %s", lane.lane_id, actor, outcome.decision.reason
    )
    return outcome
