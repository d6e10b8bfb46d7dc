"""The shared integration stack: a whole cloud (API, relay, ingest, secured broker) per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from devservices import CloudStack
from gate_agent.app import Agent, build_agent
from gate_agent.config import AgentConfig, parse_config
from gate_agent.recognition import Recognizer
from tests.support.agents import (
    BARRIER_PIN,
    BOOKED_PHOTO,
    AgentConfigFactory,
    one_lane_config,
    photo_folder,
)


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


@pytest.fixture
def photo_lane_agent(
    tmp_path: Path,
    lot_agent_config: AgentConfigFactory,
    recognizer: Recognizer,
    pins: MockFactory,
    dataset_dir: Path,
) -> Callable[[Path], Agent]:
    """``make(data_dir)``: the stack's lot as a whole agent (not started) whose one entry lane
    replays the photo of plate K179658 (``BOOKED_PHOTO``), its relay on mock pin ``BARRIER_PIN``."""

    def make(data_dir: Path) -> Agent:
        frames = photo_folder(tmp_path / "frames", dataset_dir / BOOKED_PHOTO)
        passes = {"budget_seconds": 0.8, "gap_seconds": 30}
        config = lot_agent_config(
            data_dir, frames, pin=BARRIER_PIN, pulse_seconds=0.3, fps=10, passes=passes
        )
        return build_agent(config, recognizer=recognizer, pin_factory=pins)

    return make
