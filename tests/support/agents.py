"""Agents for tests: one-lane configs (a replay camera on a photo folder and a mock GPIO relay),
a lot's sync client against a ``CloudStack``, and access-list entries made through its API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from devservices import CloudStack, wait_for
from gate_agent.config import AgentConfig, SyncConfig
from gate_agent.store import Store
from gate_agent.sync import SyncClient

__all__ = [
    "BARRIER_PIN",
    "BOOKED_PHOTO",
    "AgentConfigFactory",
    "add_entry",
    "one_lane_config",
    "photo_folder",
    "start_client",
]

BOOKED_PHOTO = "us/316b64c0-55bf-4079-a1c0-d93f461a576f.jpg"  # a dataset photo of plate K179658
BARRIER_PIN = 17  # the mock GPIO pin of the photo lane's relay

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


def start_client(stack: CloudStack, lot_id: int, store: Store, data_dir: Path) -> SyncClient:
    """A lot's sync client on ``store``, connected and caught up."""
    sync = SyncConfig(**stack.agent_sync(lot_id))
    client = SyncClient(sync, lot_id=str(lot_id), store=store, data_dir=data_dir).start()
    wait_for(lambda: client.status.subscribed, timeout=10, what="agent connected")
    wait_for(lambda: client.feed.last_catch_up_at is not None, timeout=10, what="catch-up")
    return client


def add_entry(stack: CloudStack, lot_id: int, **body: Any) -> str:
    """An access-list entry added through the API as an administrator; its id."""
    answer = stack.admin.post(f"/lots/{lot_id}/access-list", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["entry_id"])
