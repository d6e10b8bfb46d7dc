"""The cloud reads its environment in one place, and loads the Stripe SDK only where Stripe is
configured. (Import cycles across every package: ``tests/test_layering.py``.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cloud_api"


def test_only_the_settings_loader_reads_the_environment() -> None:
    readers = sorted(
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if "os.environ" in path.read_text() or "getenv" in path.read_text()
    )
    assert readers == ["cloud_api/settings.py"]


def test_a_local_provider_worker_does_not_load_the_stripe_sdk(sqlite_url: str) -> None:
    code = f"""
import sys
from cloud_api.daemons import build_worker
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.settings import load_settings
settings = load_settings({{"PARKGATE_DATABASE_URL": {sqlite_url!r}}})
worker = build_worker(settings, make_sessionmaker(make_engine(settings.database_url)))
assert worker.run_once() == 0
loaded = sorted(name for name in sys.modules if name == "stripe" or name.startswith("stripe."))
print(",".join(loaded) or "none")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"
