"""Clickjacking and leaky headers, on both apps.

Before: no answer of either app said it must not be framed, so another site could frame the
agent's status page under a decoy and have a logged-in operator press *Open barrier* (a CSRF
token does not help: the click is the operator's own), or frame a pay page. The pay page's
address is its capability, so it must not leave in a Referer either; HSTS is sent where the app
is reached over HTTPS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cloud_api.app import create_app
from cloud_api.migrate import upgrade
from cloud_api.settings import Settings
from gate_agent.web.headers import security_headers

FRAMING = "frame-ancestors 'none'"


def _no_framing(headers: Any) -> None:
    assert headers["x-frame-options"] == "DENY"
    assert FRAMING in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_no_agent_page_can_be_framed_and_plates_are_not_cached(base_url: str) -> None:
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        for path in ("/login", "/", "/display/entry-1", "/display/nope", "/lanes/entry-1/code"):
            answer = client.get(path)
            _no_framing(answer.headers)
            assert answer.headers["cache-control"] == "no-store", path
            assert "strict-transport-security" not in answer.headers  # plain HTTP on loopback
        refused = client.post("/login", content=b"x" * 20_000)  # a refusal carries them too
        assert refused.status_code == 413
        _no_framing(refused.headers)


def test_hsts_only_over_https() -> None:
    assert "Strict-Transport-Security" in security_headers(https=True)
    assert "Strict-Transport-Security" not in security_headers(https=False)


@pytest.mark.parametrize("public_url", ["http://localhost:8000", "https://parking.example"])
def test_no_cloud_page_can_be_framed_nor_leak_its_address(tmp_path: Path, public_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url, public_url=public_url, hold_sweep_seconds=0, webhook_secret="whsec_h"
    )
    with TestClient(create_app(settings)) as client:
        for path in ("/parkingLots", "/pay/" + "a" * 26, "/lots/1/pay", "/health"):
            answer = client.get(path)
            _no_framing(answer.headers)
            assert answer.headers["referrer-policy"] == "no-referrer", path
            hsts = answer.headers.get("strict-transport-security")
            assert (hsts is not None) == public_url.startswith("https://"), path
