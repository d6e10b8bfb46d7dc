"""The agent set (``parkgate[agent]``: what a lot's gate installs, and what it pulls in) installs
on a Raspberry Pi 4/5 running Raspberry Pi OS 64-bit (aarch64, glibc 2.36, Python 3.11) from
binary wheels: no compiler on the Pi. The cloud set runs on servers and is not checked here.

Asks the package index (network; a few seconds with pip's cache, under a minute without).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ["manylinux2014_aarch64", "manylinux_2_28_aarch64"]  # glibc 2.17 ... 2.28 tags


def agent_requirements() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["agent"]]


def distribution(requirement: str) -> str:
    """``psycopg[binary]>=3.1`` → ``psycopg`` (PEP 503 normalised, as in wheel file names)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "_", name.group(0)).lower()


@pytest.mark.slow
def test_agent_dependencies_resolve_as_aarch64_wheels(tmp_path: Path) -> None:
    requirements = agent_requirements()
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    download = ["pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(tmp_path)]
    target = [*platforms, "--python-version", "3.11", "--implementation", "cp"]
    command = [sys.executable, "-m", *download, *target, *requirements]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if "is ignored" not in line]
    assert result.returncode == 0, "\n".join(errors[-30:])

    wheels = sorted(p.name for p in tmp_path.iterdir())
    not_wheels = [name for name in wheels if not name.endswith(".whl")]
    assert not not_wheels, f"source distributions would need a compiler on the Pi: {not_wheels}"
    foreign = [n for n in wheels if not (n.endswith("-any.whl") or "aarch64" in n.split("-")[-1])]
    assert not foreign, f"wheels for another platform: {foreign}"
    downloaded = {name.split("-")[0].lower() for name in wheels}
    missing = [r for r in requirements if distribution(r) not in downloaded]
    assert not missing, f"no wheel for {missing}"
    cloud_only = {"stripe", "asyncpg", "redis", "uvloop", "sqlalchemy", "alembic", "psycopg"}
    assert not downloaded & cloud_only, f"the Pi would get the cloud's {downloaded & cloud_only}"
    for native in ("onnxruntime", "opencv_python_headless", "numpy"):
        assert any(n.startswith(f"{native}-") and "aarch64" in n for n in wheels), native
