"""The CLI contract other checks rely on: read-plates output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.dataset import same_plate


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate_agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_read_plates_json_one_line_per_image_errors_last_exit_1(
    tmp_path: Path, dataset_dir: Path
) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg")
    images = [
        dataset_dir / "us" / "316b64c0-55bf-4079-a1c0-d93f461a576f.jpg",
        corrupt,
        dataset_dir / "eu" / "eu1.jpg",
    ]
    result = run_cli("read-plates", "--json", *map(str, images))
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in images]
    first, bad, last = lines
    assert same_plate(first["plates"][0]["text"], "K179658")
    assert "error" in bad and "plates" not in bad
    assert same_plate(last["plates"][0]["text"], "M5XSX")
    for line in (first, last):
        assert line["ms"] > 0
        confidences = [p["confidence"] for p in line["plates"]]
        assert confidences == sorted(confidences, reverse=True)
        for plate in line["plates"]:
            x1, y1, x2, y2 = plate["box"]
            assert 0 <= x1 < x2 and 0 <= y1 < y2
            assert 0 < plate["confidence"] <= 1


def test_read_plates_all_good_exits_0(dataset_dir: Path) -> None:
    result = run_cli("read-plates", "--json", str(dataset_dir / "eu" / "eu1.jpg"))
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1


def test_run_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[lot]\nid = 'x'\n")
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 2
    assert "lanes: required field is missing" in result.stderr
