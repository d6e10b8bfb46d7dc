"""Request bodies over their route's limit are refused with 413 before the app reads them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import text

from cloud_api.body_limit import BodyLimit, BodyLimits
from cloud_api.db import make_engine
from devservices import World
from tests.support.cloud import TestClient


def test_an_oversized_json_body_is_413_not_parsed(client: TestClient, world: World) -> None:
    body = {"parking_lot_id": world.lot_id, "padding": "x" * 200_000}
    r = client.post("/bookings", json=body, headers=world.auth("alice"))
    assert r.status_code == 413
    assert r.json()["reason"] == "body_too_large"


def test_the_webhook_keeps_its_own_answer_shape(client: TestClient) -> None:
    r = client.post("/payments/webhook", content=b"{" + b" " * 300_000 + b"}")
    assert r.status_code == 413
    assert r.json()["result"] == "too_large"


def test_the_csv_import_takes_more_than_a_json_route(client: TestClient, world: World) -> None:
    csv = "plate,kind\n" + "".join(f"P{i:06d},allow\n" for i in range(12_000))  # ~170 KB
    r = client.post(
        f"/lots/{world.lot_id}/access-list/import",
        content=csv.encode(),
        headers={**world.auth("operator"), "Content-Type": "text/csv"},
    )
    assert r.status_code != 413, r.text


def test_a_bad_content_length_is_400(client: TestClient, world: World) -> None:
    app = client.app
    status, answer, _ = _call(app, [b"{}"], headers=[(b"content-length", b"ten")])
    assert (status, answer["reason"]) == (400, "bad_content_length")


class _Inner:
    def __init__(self) -> None:
        self.called = False
        self.body = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        message = await receive()
        self.body = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _call(
    app: Any, chunks: list[bytes], *, headers: list[tuple[bytes, bytes]], path: str = "/bookings"
) -> tuple[int, dict[str, Any], int]:
    """Run one request through ``app``; returns status, JSON answer, body messages read."""
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[reads - 1], "more_body": reads < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {"raw": body.decode()}
    return sent[0]["status"], answer, reads


def test_a_streamed_body_stops_being_read_at_the_limit() -> None:
    inner = _Inner()
    limited = BodyLimit(inner, BodyLimits(json=4096))
    chunks = [b"x" * 1024] * 1000  # 1 MB, chunked: no Content-Length
    status, answer, reads = _call(limited, chunks, headers=[])
    assert (status, answer["reason"]) == (413, "body_too_large")
    assert reads == 5  # 4 KiB taken, the fifth chunk passed the limit: nothing more read
    assert not inner.called


def test_a_lying_content_length_is_counted_not_believed() -> None:
    inner = _Inner()
    limited = BodyLimit(inner, BodyLimits(json=4096))
    status, _, _ = _call(limited, [b"x" * 3000] * 3, headers=[(b"content-length", b"10")])
    assert status == 413 and not inner.called


def test_a_declared_oversize_is_refused_without_reading() -> None:
    inner = _Inner()
    limited = BodyLimit(inner, BodyLimits(json=4096))
    status, _, reads = _call(limited, [b"x"], headers=[(b"content-length", b"5000")])
    assert (status, reads) == (413, 0)


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    inner = _Inner()
    limited = BodyLimit(inner, BodyLimits(json=4096))
    status, _, _ = _call(limited, [b"a" * 1000, b"b" * 1000], headers=[])
    assert status == 200 and inner.body == b"a" * 1000 + b"b" * 1000


def test_sqlite_commits_are_durable(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()
