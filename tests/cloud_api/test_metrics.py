"""The cloud's /metrics: bookings, refused webhooks, latency per route template, outbox depth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from cloud_api.app import create_app
from cloud_api.settings import Settings
from devservices import World
from tests.cloud_api.test_api import H, body
from tests.support.cloud import Clock, TestClient

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def client(database_url: str, world: World, clock: Clock) -> Iterator[TestClient]:
    """The app as a scraper on this host sees it (/metrics answers local clients only)."""
    app = create_app(Settings(database_url=database_url, hold_sweep_seconds=0), clock=clock)
    with TestClient(app, client=("127.0.0.1", 50000)) as c:
        yield c


def scrape(client: TestClient) -> Series:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


def test_bookings_created_and_cancelled_move(
    client: TestClient, world: World, clock: Clock
) -> None:
    before = scrape(client)
    r = client.post("/bookings", json=body(world, clock), headers=world.auth("alice"))
    assert r.status_code == 201
    bid = r.json()["booking_id"]
    conflict = client.post(
        "/bookings", json=body(world, clock, H, 3 * H, vehicle_type="ev"), headers=world.auth("bob")
    )
    assert conflict.status_code in (201, 409)
    created = 1 + (conflict.status_code == 201)
    assert client.post(f"/bookings/{bid}/cancel", headers=world.auth("alice")).status_code == 200
    after = scrape(client)
    assert (
        value(after, "parkgate_bookings_created_total")
        - value(before, "parkgate_bookings_created_total")
        == created
    )
    assert value(after, "parkgate_bookings_cancelled_total") == 1


def test_request_latency_is_labelled_by_route_template(
    client: TestClient, world: World, clock: Clock
) -> None:
    r = client.post("/bookings", json=body(world, clock), headers=world.auth("alice"))
    bid = r.json()["booking_id"]
    assert client.get(f"/bookings/{bid}", headers=world.auth("alice")).status_code == 200
    assert client.get("/bookings/nope", headers=world.auth("alice")).status_code == 404
    series = scrape(client)
    route = "/bookings/{booking_id}"
    assert (
        value(
            series, "parkgate_http_request_seconds_count", method="GET", route=route, status="200"
        )
        == 1
    )
    assert (
        value(
            series, "parkgate_http_request_seconds_count", method="GET", route=route, status="404"
        )
        == 1
    )
    assert (
        value(
            series,
            "parkgate_http_request_seconds_count",
            method="POST",
            route="/bookings",
            status="201",
        )
        == 1
    )
    assert not any(bid in labels_value for (_n, labels) in series for _k, labels_value in labels)


def test_refused_webhooks_are_counted_by_reason(client: TestClient) -> None:
    r = client.post("/payments/webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
    assert r.status_code == 400
    reason = r.json()["result"]
    client.post("/payments/webhook", content=b"{}")  # no signature at all
    series = scrape(client)
    assert reason in ("bad_signature", "stale_signature")
    assert value(series, "parkgate_webhook_failures_total", reason=reason) >= 1
    total = sum(
        v for (name, _labels), v in series.items() if name == "parkgate_webhook_failures_total"
    )
    assert total == 2


def test_outbox_depth_counts_waiting_messages(
    client: TestClient, world: World, clock: Clock
) -> None:
    before = scrape(client)
    waiting_before = sum(
        v for (name, _labels), v in before.items() if name == "parkgate_cloud_outbox_depth"
    )
    r = client.post("/bookings", json=body(world, clock), headers=world.auth("alice"))
    assert r.status_code == 201
    after = scrape(client)
    waiting = sum(
        v for (name, _labels), v in after.items() if name == "parkgate_cloud_outbox_depth"
    )
    assert waiting > waiting_before  # a booking writes at least one outbox message (payment)


def test_metrics_are_per_app_not_global(client: TestClient) -> None:
    scrape(client)
    assert REGISTRY.get_sample_value("parkgate_bookings_created_total") is None


def test_remote_scrapers_need_the_metrics_token(database_url: str, world: World) -> None:
    local_only = create_app(Settings(database_url=database_url, hold_sweep_seconds=0))
    with TestClient(local_only, client=("203.0.113.9", 50000)) as remote:
        r = remote.get("/metrics")
        assert (r.status_code, r.json()["reason"]) == (403, "metrics_local_only")
    settings = Settings(database_url=database_url, hold_sweep_seconds=0, metrics_token="s3cret")
    with TestClient(create_app(settings), client=("203.0.113.9", 50000)) as remote:
        assert remote.get("/metrics").status_code == 401
        wrong = remote.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = remote.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200 and "parkgate_http_request_seconds" in right.text
