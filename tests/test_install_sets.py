"""Two installs from one repository: the agent set a Raspberry Pi installs carries none of the
cloud's packages and still runs the gate agent's commands.

The slow test builds a fresh venv and installs ``.[agent]`` into it from the checkout (pip's
cache makes that about a minute), then reads a real photo with ``gate-agent read-plates``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLOUD_ONLY = {"stripe", "asyncpg", "redis", "uvloop", "sqlalchemy", "alembic", "psycopg"}


def _names(requirements: list[str]) -> set[str]:
    return {
        r.split("[")[0].split(">")[0].split("=")[0].split(";")[0].strip().lower()
        for r in requirements
    }


def _extras() -> dict[str, list[str]]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return {"core": project["dependencies"], **project["optional-dependencies"]}


def test_the_agent_set_names_no_cloud_package() -> None:
    extras = _extras()
    assert _names(extras["core"] + extras["agent"]) & CLOUD_ONLY == set()
    assert _names(extras["cloud"]) >= CLOUD_ONLY
    assert "parkgate[agent,cloud]" in extras["dev"]


def _site_size(venv: Path) -> int:
    site = next((venv / "lib").glob("python3*/site-packages"))
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.integration
def test_a_fresh_agent_venv_lacks_the_cloud_and_reads_plates(
    tmp_path: Path, models_dir: Path, dataset_dir: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    install = subprocess.run(
        [*pip, "install", "--quiet", "--disable-pip-version-check", f"{ROOT}[agent]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run(
        [*pip, "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {row["name"].lower().replace("_", "-") for row in json.loads(listed.stdout)}
    assert installed & {*CLOUD_ONLY, "psycopg-binary"} == set()
    print(f"agent set installed: {_site_size(venv) / 1e6:.0f} MB in site-packages")

    agent = str(venv / "bin" / "gate-agent")
    assert subprocess.run([agent, "--help"], capture_output=True, check=True).returncode == 0
    env = {**os.environ, "PARKGATE_MODELS_DIR": str(models_dir)}
    env.pop("PYTHONPATH", None)
    photo = dataset_dir / "eu" / "eu1.jpg"
    read = subprocess.run(
        [agent, "read-plates", "--json", str(photo)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert read.returncode == 0, read.stderr[-2000:]
    result = json.loads(read.stdout.splitlines()[0])
    assert result["plates"], result
