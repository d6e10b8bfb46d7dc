"""The shared integration stack: a whole cloud (API, relay, ingest, secured broker) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devservices import CloudStack
from gate_agent.config import AgentConfig, parse_config
from tests.support.agents import AgentConfigFactory, one_lane_config


@pytest.fixture
def stack_options() -> dict[str, Any]:
    """Keyword arguments for ``CloudStack``; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
def stack(tmp_path: Path, stack_options: dict[str, Any]) -> Iterator[CloudStack]:
    """A started ``CloudStack`` with one lot; stopped after the test."""
    cloud = CloudStack(tmp_path / "cloud", **stack_options).start()
    yield cloud
    cloud.stop()


@pytest.fixture
def lot_id(stack: CloudStack) -> int:
    """The stack's lot."""
    return stack.lot_ids[0]


@pytest.fixture
def lot_agent_config(stack: CloudStack, lot_id: int) -> AgentConfigFactory:
    """``make(data_dir, frames, **lane)``: the stack's lot as a one-lane agent config
    (``one_lane_config``) that syncs with the stack."""

    def make(data_dir: Path, frames: Path, **lane: Any) -> AgentConfig:
        sync = stack.agent_sync(lot_id)
        return parse_config(
            one_lane_config(lot_id=str(lot_id), data_dir=data_dir, frames=frames, sync=sync, **lane)
        )

    return make
