"""Schemathesis over the OpenAPI schema (in process): no input makes the API answer 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from cloud_api.app import create_app
from cloud_api.migrate import upgrade
from cloud_api.settings import Settings
from devservices import seed_world
from tests.support.cloud import Clock


def _app(tmp: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp / 'fuzz.db'}"
    upgrade(url)
    world = seed_world(url)
    app = create_app(Settings(database_url=url, hold_sweep_seconds=0), clock=Clock())
    return app, world


@pytest.mark.slow
def test_no_server_errors(tmp_path: Path) -> None:
    app, world = _app(tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(
            max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=op.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            for who in ("alice", "admin"):
                response = case.call(headers=world.auth(who))
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
                case.validate_response(response, checks=[not_a_server_error])

        check()
    assert not failures, failures
