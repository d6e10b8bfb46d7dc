"""Evidence images: the frame saved with a manual open, and kept event images.

Manual-open frames are saved only when the lot keeps images (``privacy.keep_images``) or asks
for them (``privacy.manual_open_frames``), under ``<data_dir>/evidence`` named by the journal event
id; the retention job deletes them after ``privacy.retention_days``. Event images written by
image keeping (``privacy.keep_images``) are served only from inside the configured image
directory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gate_agent.domain import JournalEvent
from gate_agent.web.context import WebContext
from gate_agent.web.status import encode_jpeg

__all__ = ["evidence_file", "save_evidence"]

log = logging.getLogger(__name__)


def _own_file(ctx: WebContext, event_id: str) -> Path:
    if not event_id.isalnum():
        raise ValueError("event ids are alphanumeric")
    return ctx.evidence_dir / f"{event_id}.jpg"


def save_evidence(ctx: WebContext, event_id: str, image: np.ndarray) -> Path | None:
    """Save a manual open's frame if the lot's privacy settings allow it (else None)."""
    if not ctx.save_manual_open_frames:
        return None
    path = _own_file(ctx, event_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(image, max_width=1920))
    log.info("evidence frame saved for event %s", event_id)
    return path


def evidence_file(ctx: WebContext, event: JournalEvent) -> Path | None:
    """The image kept for ``event``, if there is one the operator may see."""
    own = _own_file(ctx, event.event_id)
    if own.is_file():
        return own
    if not (ctx.keep_images and event.image_path and ctx.image_dir is not None):
        return None
    root = ctx.image_dir.resolve()
    path = (root / event.image_path).resolve()
    return path if path.is_file() and path.is_relative_to(root) else None
