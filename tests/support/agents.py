"""One-lane agent configs for tests: a replay camera on a photo folder and a mock GPIO relay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gate_agent.config import AgentConfig

__all__ = ["AgentConfigFactory", "one_lane_config", "photo_folder"]

AgentConfigFactory = Callable[..., AgentConfig]
"""``make(data_dir, frames, **lane)`` → a parsed one-lane agent config (a fixture's product)."""


def photo_folder(folder: Path, *photos: Path) -> Path:
    """A replay folder holding the given dataset photos (linked, not copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        (folder / photo.name).symlink_to(photo)
    return folder


def one_lane_config(
    *,
    lot_id: str,
    data_dir: Path,
    frames: Path,
    pin: int = 17,
    pulse_seconds: float = 0.3,
    fps: float = 10.0,
    direction: str = "entry",
    **sections: Any,
) -> dict[str, Any]:
    """An agent config dict (for ``parse_config``) with one lane ``{direction}-1``; the web
    server is off unless a ``web`` section is given; other sections (``sync``, ``passes``,
    ``privacy``) are passed through."""
    return {
        "lot": {"id": lot_id, "data_dir": str(data_dir)},
        "web": {"enabled": False},
        **sections,
        "lanes": [
            {
                "id": f"{direction}-1",
                "direction": direction,
                "camera": {"kind": "replay", "path": str(frames), "fps": fps},
                "barrier": {
                    "kind": "gpio",
                    "pin": pin,
                    "pulse_seconds": pulse_seconds,
                    "mock": True,
                },
            }
        ],
    }
