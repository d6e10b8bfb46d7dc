from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gate_agent.config import ConfigError, load_config, parse_config
from gate_agent.domain import AntiPassback, Direction

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "agent.example.toml"

MINIMAL = """
[lot]
id = "lot-1"
[[lanes]]
id = "in"
direction = "entry"
camera = { kind = "replay", path = "/tmp" }
barrier = { kind = "dry-run" }
"""


def gate_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate_agent.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert [lane.direction for lane in config.lanes] == [Direction.ENTRY, Direction.EXIT]
    assert config.lot.rules.to_rules().anti_passback is AntiPassback.HARD


def test_check_config_ok(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL)
    result = gate_agent("check-config", str(path))
    assert (result.returncode, result.stdout.strip()) == (0, "ok")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('direction = "entry"', 'direction = "sideways"'), "lanes.0.direction: Input should be"),
        (('kind = "dry-run"', 'kind = "relay"'), "lanes.0.barrier: 'kind' must be one of"),
        (('id = "lot-1"', 'id = "lot 1"'), "lot.id: String should match pattern"),
        (("[lot]", "[lot]\ndat_dir = 1"), "lot.dat_dir: unknown field"),
        (('kind = "dry-run"', 'kind = "gpio"'), "lanes.0.barrier.pin: required field is missing"),
        (("[lot]", '[recognition]\nplate_format = "[("\n[lot]'), "recognition.plate_format:"),
        (("[lot]", "[lot"), "not valid TOML"),
    ],
)
def test_check_config_names_the_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL.replace(*change, 1))
    result = gate_agent("check-config", str(path))
    assert result.returncode == 2
    assert expected in result.stdout, result.stdout


def test_every_problem_reported_one_per_line() -> None:
    data = {
        "lot": {"id": "x", "rules": {"min_confidence": 2}},
        "lanes": [
            {
                "id": "a",
                "direction": "entry",
                "camera": {"kind": "opencv", "source": 0},
                "barrier": {"kind": "serial"},
            },
            {
                "id": "a",
                "direction": "exit",
                "camera": {"kind": "opencv", "source": 1},
                "barrier": {"kind": "dry-run"},
            },
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.problems == [
        "lot.rules.min_confidence: Input should be less than or equal to 1",
        "lanes.0.barrier.port: required field is missing",
    ]


def test_duplicate_lane_ids_rejected() -> None:
    lane = {
        "id": "a",
        "direction": "entry",
        "camera": {"kind": "opencv", "source": 0},
        "barrier": {"kind": "dry-run"},
    }
    with pytest.raises(ConfigError, match="lane ids must be unique; repeated: a"):
        parse_config({"lot": {"id": "x"}, "lanes": [lane, lane]})


def test_secrets_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARKGATE_TEST_PORT", raising=False)
    data = {
        "lot": {"id": "x"},
        "lanes": [
            {
                "id": "a",
                "direction": "entry",
                "camera": {"kind": "opencv", "source": 0},
                "barrier": {"kind": "serial", "port": "env:PARKGATE_TEST_PORT"},
            }
        ],
    }
    with pytest.raises(ConfigError, match="PARKGATE_TEST_PORT is not set"):
        parse_config(data)
    monkeypatch.setenv("PARKGATE_TEST_PORT", "/dev/ttyACM0")
    assert parse_config(data).lanes[0].barrier.port == "/dev/ttyACM0"  # type: ignore[union-attr]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = gate_agent("check-config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "cannot read" in result.stdout
