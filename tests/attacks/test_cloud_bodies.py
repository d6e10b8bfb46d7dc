"""Oversized and malformed bodies on every route of the schema: a 4xx with a reason, never a
500, and an oversized body is a 413 whatever the route."""

from __future__ import annotations

from typing import Any

import pytest

from cloud_api.payments import SIGNATURE_HEADER, signature_header
from devservices import World
from tests.attacks.conftest import SECRET
from tests.support.cloud import TestClient

MALFORMED: dict[str, tuple[bytes, str]] = {
    "truncated json": (b'{"parking_lot_id": 1, "plate": ', "application/json"),
    "wrong shape": (b"[1, 2, 3]", "application/json"),
    "not utf-8": (b'{"plate": "\xff\xfe\xfa"}', "application/json"),
    "deeply nested": (b"[" * 50_000 + b"]" * 50_000, "application/json"),
    "huge number": (b'{"parking_lot_id": 1' + b"0" * 5000 + b"}", "application/json"),
    "nul bytes": (b'{"plate": "A\\u0000B"}', "application/json"),
    "csv as json": (b"plate,kind\nA,allow\n", "application/json"),
    "json as csv": (b'{"plate": "A"}', "text/csv"),
    "form": (b"a=1&b=2", "application/x-www-form-urlencoded"),
}


def _operations(client: TestClient, world: World) -> list[tuple[str, str]]:
    schema = client.get("/openapi.json").json()
    ids = {
        "lot_id": str(world.lot_id),
        "booking_id": "bk_AAAAAAAAAAAAAAAA",
        "vehicle_type": "car",
        "user_id": "1",
        "entry_id": "1",
    }
    found = []
    for path, operations in schema["paths"].items():
        url = path
        for name, value in ids.items():
            url = url.replace("{" + name + "}", value)
        found.extend((method.upper(), url) for method in operations)
    return found


def _refusal_reason(response: Any) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    reason = answer.get("reason") or answer.get("result") or answer.get("detail")
    return str(reason) if reason else None


@pytest.mark.parametrize("who", ["alice", "operator", "admin"])
def test_oversized_bodies_are_413_on_every_route(
    client: TestClient, world: World, who: str
) -> None:
    huge = b'{"x": "' + b"A" * (6 * 1024 * 1024) + b'"}'  # over every limit, the CSV import's too
    for method, url in _operations(client, world):
        r = client.request(
            method,
            url,
            content=huge,
            headers={**world.auth(who), "Content-Type": "application/json"},
        )
        assert r.status_code == 413, (method, url, r.status_code)
        assert _refusal_reason(r) in ("body_too_large", "too_large"), (method, url, r.text)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_bodies_are_4xx_with_a_reason_on_every_route(
    client: TestClient, world: World, name: str
) -> None:
    payload, content_type = MALFORMED[name]
    for who in ("alice", "admin"):
        for method, url in _operations(client, world):
            headers = {**world.auth(who), "Content-Type": content_type}
            r = client.request(method, url, content=payload, headers=headers)
            assert r.status_code < 500, (name, who, method, url, r.status_code, r.text[:200])
            if r.status_code >= 400:
                assert _refusal_reason(r), (name, method, url, r.text[:200])


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_signed_malformed_webhooks_are_refused_not_500(client: TestClient, name: str) -> None:
    payload, content_type = MALFORMED[name]
    headers = {SIGNATURE_HEADER: signature_header(payload, SECRET), "Content-Type": content_type}
    r = client.post("/payments/webhook", content=payload, headers=headers)
    assert r.status_code < 500, (name, r.status_code, r.text[:200])
