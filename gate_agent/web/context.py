"""What the web layer needs from the agent, and the sync-health protocol it reads.

``create_web_app`` takes anything shaped like :class:`AgentParts` (the real ``Agent`` is one) so
tests can hand in a store and lanes without threads. Sync is optional: an object following
:class:`SyncStatus` (the MQTT client) lights up the sync panel; without one it says "disabled".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gate_agent.config import AgentConfig, WebConfig
from gate_agent.display import DisplayHub
from gate_agent.help_desk import HelpDesk
from gate_agent.lane import Lane
from gate_agent.retention import EVIDENCE_SUBDIR
from gate_agent.store import Store

__all__ = ["AgentParts", "SyncStatus", "WebContext", "sync_snapshot"]

# ``Store.get_state`` key where the sync client keeps the last applied sequence
# (``gate_agent.sync.SEQ_STATE_KEY``); read when no live sync object is given.
SEQ_STATE_KEY = "sync.last_applied_seq"
EXTRA_FIELDS = (
    "inflight",
    "last_error",
    "dead_letters",
    "clock_offset_s",
)  # shown when the object has them


@runtime_checkable
class SyncStatus(Protocol):
    """Live sync health, as the sync client exposes it (attributes or properties)."""

    @property
    def connected(self) -> bool: ...

    @property
    def last_applied_seq(self) -> int | None: ...

    @property
    def outbox_depth(self) -> int: ...

    @property
    def last_catch_up_at(self) -> datetime | None: ...

    @property
    def last_heartbeat_at(self) -> datetime | None: ...


class SyncStatusSource(Protocol):
    """A sync client that hands out :class:`SyncStatus` snapshots (``SyncClient.status``)."""

    @property
    def status(self) -> SyncStatus: ...


class AgentParts(Protocol):
    """The slice of :class:`gate_agent.app.Agent` the web layer uses."""

    config: AgentConfig
    store: Store
    lanes: dict[str, Lane]


@dataclass
class WebContext:
    """Everything a route handler reads; built once per app."""

    lot_id: str
    store: Store
    lanes: Mapping[str, Lane]
    web: WebConfig
    evidence_dir: Path
    keep_images: bool
    image_dir: Path | None
    sync: SyncStatus | SyncStatusSource | None = None
    wallclock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    save_manual_open_frames: bool = False  # privacy.keep_images or privacy.manual_open_frames
    display: DisplayHub | None = None  # the drivers' lane screens (None: not served)
    help_desk: HelpDesk | None = None  # drivers' help requests (alarms on the lanes page)

    @classmethod
    def from_agent(
        cls, agent: AgentParts, web: WebConfig, sync: SyncStatus | SyncStatusSource | None = None
    ) -> WebContext:
        config = agent.config
        data_dir = Path(config.lot.data_dir)
        return cls(
            lot_id=config.lot.id,
            store=agent.store,
            lanes=agent.lanes,
            web=web,
            evidence_dir=data_dir / EVIDENCE_SUBDIR,
            keep_images=config.privacy.keep_images,
            image_dir=config.privacy.image_dir or data_dir,
            sync=sync,
            save_manual_open_frames=config.privacy.keep_images or config.privacy.manual_open_frames,
            display=getattr(agent, "display", None) if config.display.enabled else None,
            help_desk=getattr(agent, "help_desk", None),
        )


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def live_sync(sync: SyncStatus | SyncStatusSource | None) -> SyncStatus | None:
    """The current status: the object itself, or its ``status`` snapshot."""
    if sync is None or isinstance(sync, SyncStatus):
        return sync
    return sync.status


def sync_snapshot(ctx: WebContext) -> dict[str, Any]:
    """Sync health as plain data: from the live object when there is one, else the store."""
    live = live_sync(ctx.sync)
    if live is None:
        return {
            "enabled": False,
            "connected": False,
            "last_applied_seq": ctx.store.get_state(SEQ_STATE_KEY),
            "outbox_depth": ctx.store.outbox_depth(),
            "last_catch_up_at": None,
            "last_heartbeat_at": None,
        }
    snapshot = {
        "enabled": True,
        "connected": bool(live.connected),
        "last_applied_seq": live.last_applied_seq,
        "outbox_depth": live.outbox_depth,
        "last_catch_up_at": _iso(live.last_catch_up_at),
        "last_heartbeat_at": _iso(live.last_heartbeat_at),
    }
    for name in EXTRA_FIELDS:
        if hasattr(live, name):
            snapshot[name] = _iso(getattr(live, name))
    return snapshot
