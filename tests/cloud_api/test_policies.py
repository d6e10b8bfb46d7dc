"""Lot policy and access lists through the API, on SQLite and PostgreSQL: happy paths, every
refusal leaving the database as it was, the change-feed rows written, and the audit log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.changes import change_from_feed
from cloud_api.lot_sync import LotStatus, changes_page
from cloud_api.migrate import upgrade
from cloud_api.models import Booking, Lot, LotChange
from cloud_api.policies import AccessListEntry, LotAuditEntry, LotPolicyVersion
from cloud_api.visits import record_arrival, record_exit
from devservices import World
from parkgate_protocol import ChangeKind, ChangesPage, parse_policy
from tests.support.cloud import T0, TestClient
from tests.support.payments import pay_booking

H = timedelta(hours=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test here on a migrated SQLite file and on PostgreSQL (``world``, ``client`` and
    ``session_factory`` of conftest use it)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cloud.db'}"
    else:
        url = request.getfixturevalue("postgres_db")
    upgrade(url)
    return url


@pytest.fixture
def db(session_factory: sessionmaker[Session], world: World) -> sessionmaker[Session]:
    """Short sessions: on SQLite a session that has read holds the write lock until closed."""
    return session_factory


def _feed(db: sessionmaker[Session], lot_id: int) -> list[LotChange]:
    stmt = select(LotChange).where(LotChange.lot_id == lot_id).order_by(LotChange.seq)
    with db() as s:
        return list(s.scalars(stmt))


def _counts(db: sessionmaker[Session], lot_id: int) -> tuple[int, ...]:
    """Feed rows, policy versions, entries and audit entries of the lot: a refusal changes none."""
    tables = (LotChange, LotPolicyVersion, AccessListEntry, LotAuditEntry)
    with db() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(t).where(t.lot_id == lot_id)) or 0
            for t in tables
        )


def _snapshot(db: sessionmaker[Session], lot_id: int) -> ChangesPage:
    with db() as s:
        page = changes_page(s, lot_id, since=0, snapshot=True, limit=100)
    assert page is not None
    return page


def _policy(client: TestClient, world: World, who: str = "operator") -> dict[str, Any]:
    r = client.get(f"/lots/{world.lot_id}/policy", headers=world.auth(who))
    assert r.status_code == 200, r.text
    return r.json()


def _put(
    client: TestClient,
    world: World,
    body: dict[str, Any],
    version: int | None,
    who: str = "operator",
) -> Any:
    headers = world.auth(who) | ({"If-Match": f'"{version}"'} if version is not None else {})
    return client.put(f"/lots/{world.lot_id}/policy", json=body, headers=headers)


NIGHT_TARIFF = {
    "currency": "EUR",
    "timezone": "Europe/Berlin",
    "vehicles": {
        "car": {
            "block_minutes": 30,
            "rate_cents": 150,
            "free_minutes": 15,
            "daily_max_cents": 2400,
            "bands": [{"name": "night", "start": "22:00", "end": "06:00", "rate_cents": 50}],
        },
        "ev": {"rate_cents": 300},
    },
}


# -- the policy ---------------------------------------------------------------------------------


def test_a_lot_without_a_stored_policy_has_version_1_from_its_columns(
    client: TestClient, world: World
) -> None:
    r = client.get(f"/lots/{world.lot_id}/policy", headers=world.auth("operator"))
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'
    body = r.json()
    assert body["version"] == 1 and body["policy"]["version"] == 1
    assert body["policy"]["early_grace_minutes"] == 15
    assert body["policy"]["tariff"]["vehicles"]["car"] == {
        "block_minutes": 60,
        "rate_cents": 250,
        "free_minutes": 0,
        "daily_max_cents": 2000,
        "bands": [],
    }
    assert body["out_of_date"] is True and body["gate"]["policy_version"] is None


def test_put_stores_a_new_version_pushes_it_and_audits_the_diff(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    current = _policy(client, world)
    before = len(_feed(db, world.lot_id))
    body = {**current["policy"], "late_grace_minutes": 30, "tariff": NIGHT_TARIFF}
    r = _put(client, world, body, 1)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"' and r.json()["policy"]["late_grace_minutes"] == 30
    feed = _feed(db, world.lot_id)
    assert len(feed) == before + 1 and feed[-1].kind == "policy"
    change = change_from_feed(world.lot_id, feed[-1].seq, feed[-1].kind, dict(feed[-1].payload))
    assert change.kind is ChangeKind.POLICY and change.policy is not None
    pushed = parse_policy(change.policy)
    assert pushed.version == 2 and pushed.tariff.timezone == "Europe/Berlin"
    audit = client.get(f"/lots/{world.lot_id}/audit", headers=world.auth("admin")).json()
    assert audit[0]["action"] == "policy.updated" and audit[0]["actor"] == "op@example.test"
    assert set(audit[0]["detail"]["changes"]) == {"late_grace_minutes", "tariff"}
    assert audit[0]["detail"]["changes"]["late_grace_minutes"] == {"from": 15, "to": 30}
    with db() as s:
        lot = s.get(Lot, world.lot_id)
        assert lot is not None and lot.late_grace_minutes == 30  # the lot's columns kept in step
    page = _snapshot(db, world.lot_id)
    assert page.policy is not None and page.policy["version"] == 2


def test_the_gate_status_says_whether_the_lot_is_out_of_date(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    with db() as s:
        s.add(LotStatus(lot_id=world.lot_id, state="online", at=T0, lanes=[], policy_version=1))
        s.commit()
    assert _policy(client, world)["out_of_date"] is False
    with db() as s:
        row = s.get(LotStatus, world.lot_id)
        assert row is not None
        row.policy_problem = "unsupported_policy: schema=2, this side knows 1"
        s.commit()
    answer = _policy(client, world)
    assert answer["out_of_date"] is True and answer["gate"]["policy_problem"].startswith("unsup")


def test_stale_and_missing_if_match(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    body = _policy(client, world)["policy"]
    assert _put(client, world, body, 1).status_code == 200
    counts = _counts(db, world.lot_id)
    stale = _put(client, world, body, 1)
    assert (stale.status_code, stale.json()["reason"]) == (412, "stale_version")
    missing = _put(client, world, body, None)
    assert (missing.status_code, missing.json()["reason"]) == (428, "if_match_required")
    assert _counts(db, world.lot_id) == counts


BAD_POLICIES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "negative grace": ({"early_grace_minutes": -5}, ["body", "early_grace_minutes"]),
    "unknown anti-passback": ({"anti_passback": "sometimes"}, ["body", "anti_passback"]),
    "negative rate": (
        {"tariff": {"vehicles": {"car": {"rate_cents": -1}}}},
        ["body", "tariff", "vehicles", "car", "rate_cents"],
    ),
    "absurd rate": (
        {"tariff": {"vehicles": {"car": {"rate_cents": 10**9}}}},
        ["body", "tariff", "vehicles", "car", "rate_cents"],
    ),
    "no car tariff": ({"tariff": {"vehicles": {"ev": {"rate_cents": 1}}}}, ["body", "tariff"]),
    "unknown zone": (
        {"tariff": {"timezone": "Mars/Olympus", "vehicles": {"car": {"rate_cents": 1}}}},
        ["body", "tariff", "timezone"],
    ),
    "unknown field": ({"free_parking_for_all": True}, ["body", "free_parking_for_all"]),
    "bad language": ({"language": "english"}, ["body", "language"]),
    "another version": ({"version": 7}, ["body", "version"]),
}


@pytest.mark.parametrize("case", BAD_POLICIES)
def test_bad_policies_are_422_naming_the_field_and_change_nothing(
    client: TestClient, world: World, db: sessionmaker[Session], case: str
) -> None:
    change, loc = BAD_POLICIES[case]
    body = {**_policy(client, world)["policy"], **change}
    counts = _counts(db, world.lot_id)
    r = _put(client, world, body, 1)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_policy"
    assert loc in [e["loc"][: len(loc)] for e in r.json()["detail"]], r.json()
    assert _counts(db, world.lot_id) == counts
    assert _policy(client, world)["version"] == 1


def test_a_put_sends_every_field(client: TestClient, world: World) -> None:
    r = _put(client, world, {"early_grace_minutes": 5}, 1)
    assert r.status_code == 422
    assert ["body", "tariff"] in [e["loc"] for e in r.json()["detail"]]


@pytest.mark.parametrize(
    ("who", "lot", "status"),
    [("alice", "lot_id", 403), ("device", "lot_id", 403), ("other_operator", "lot_id", 404)],
)
def test_only_the_lots_operators_and_admins(
    client: TestClient, world: World, who: str, lot: str, status: int
) -> None:
    lot_id = getattr(world, lot)
    assert client.get(f"/lots/{lot_id}/policy", headers=world.auth(who)).status_code == status
    entry = {"plate": "AB123", "kind": "deny"}
    r = client.post(f"/lots/{lot_id}/access-list", json=entry, headers=world.auth(who))
    assert r.status_code == status
    assert client.get(f"/lots/{lot_id}/policy", headers=world.auth("admin")).status_code == 200


def test_admin_rules_and_prices_become_policy_versions(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    """One source of truth: the older admin routes change the policy, and push it."""
    auth = world.auth("operator")
    r = client.patch(f"/admin/lots/{world.lot_id}", json={"early_grace_minutes": 5}, headers=auth)
    assert r.status_code == 200
    r = client.put(
        f"/admin/lots/{world.lot_id}/prices/car",
        json={"hourly_cents": 300, "daily_cap_cents": 1000},
        headers=auth,
    )
    assert r.status_code == 200
    policy = _policy(client, world)
    assert policy["version"] == 3 and policy["policy"]["early_grace_minutes"] == 5
    assert policy["policy"]["tariff"]["vehicles"]["car"]["rate_cents"] == 300
    assert [c.kind for c in _feed(db, world.lot_id)][-2:] == ["policy", "policy"]


# -- pricing with the policy --------------------------------------------------------------------


def test_bookings_are_priced_on_the_policy_and_record_its_version(
    client: TestClient, world: World
) -> None:
    body = {**_policy(client, world)["policy"], "tariff": NIGHT_TARIFF}
    assert _put(client, world, body, 1).status_code == 200
    start = T0 + 12 * H  # 20:00 UTC = 22:00 in Berlin (summer): the night band

    def book(vehicle_type: str, hours: int) -> Any:
        window = {"start_time": start.isoformat(), "end_time": (start + hours * H).isoformat()}
        body = {"parking_lot_id": world.lot_id, "vehicle_plate": "B-XY-1", **window}
        return client.post(
            "/bookings", json={**body, "vehicle_type": vehicle_type}, headers=world.auth("alice")
        )

    car = book("car", 2)
    assert car.status_code == 201, car.text
    assert car.json()["price"] == 4 * 50
    motorcycle = book("motorcycle", 1)
    assert (motorcycle.status_code, motorcycle.json()["reason"]) == (422, "no_price")


def test_a_tariff_change_never_makes_an_extension_free_nor_reprices_the_booked_part(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    body = {k: v for k, v in _policy(client, world)["policy"].items() if k != "version"}
    dear = {"vehicles": {"car": {"rate_cents": 1000, "daily_max_cents": 10_000}}}
    assert _put(client, world, {**body, "tariff": dear}, 1).status_code == 200
    window = {"start_time": (T0 + H).isoformat(), "end_time": (T0 + 6 * H).isoformat()}
    booked = client.post(
        "/bookings",
        json={"parking_lot_id": world.lot_id, "vehicle_plate": "EXT1", **window},
        headers=world.auth("alice"),
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["price"] == 5000
    cheap = {"vehicles": {"car": {"rate_cents": 100, "daily_max_cents": 800}}}
    assert _put(client, world, {**body, "tariff": cheap}, 2).status_code == 200
    with db.begin() as s:  # paid: an unpaid booking cannot be extended
        pay_booking(s, booked.json()["booking_id"], T0)
    extended = client.post(
        f"/bookings/{booked.json()['booking_id']}/extend",
        json={"end_time": (T0 + 8 * H).isoformat()},
        headers=world.auth("alice"),
    )
    assert extended.status_code == 200, extended.text
    assert extended.json()["price"] == 5000 + 200  # two more hours at the new rate


def test_an_early_exit_credits_the_unused_time_at_the_price_it_was_sold_at(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    """A tariff cut after the sale must not turn a 'whole hours' early exit into a refund of
    nearly everything (the used hour priced at the new, lower rate)."""
    body = {k: v for k, v in _policy(client, world)["policy"].items() if k != "version"}
    dear = {"vehicles": {"car": {"rate_cents": 1000, "daily_max_cents": 10_000}}}
    assert _put(client, world, {**body, "tariff": dear}, 1).status_code == 200
    window = {"start_time": (T0 + H).isoformat(), "end_time": (T0 + 6 * H).isoformat()}
    booked = client.post(
        "/bookings",
        json={"parking_lot_id": world.lot_id, "vehicle_plate": "EARLY1", **window},
        headers=world.auth("alice"),
    )
    assert booked.status_code == 201, booked.text
    cheap = {"vehicles": {"car": {"rate_cents": 100, "daily_max_cents": 800}}}
    assert _put(client, world, {**body, "tariff": cheap}, 2).status_code == 200
    with db() as s:
        lot = s.get(Lot, world.lot_id)
        assert lot is not None
        lot.early_exit_policy = "whole_hours"
        booking = s.get(Booking, booked.json()["booking_id"])
        assert booking is not None
        pay_booking(s, booking.id, T0)  # paid (5 h at 10.00)
        record_arrival(s, booking, at=T0 + H, now=T0 + H)
        outcome = record_exit(s, booking, at=T0 + 2 * H, now=T0 + 2 * H)
        s.commit()
    assert outcome.credit_cents == 5000 - 1000  # the hour used, at the price it was sold at


def test_the_policy_a_lot_never_stored_is_kept_when_it_first_changes(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    derived = _policy(client, world)["policy"]
    body = {k: v for k, v in derived.items() if k != "version"}
    assert _put(client, world, {**body, "early_grace_minutes": 5}, 1).status_code == 200
    with db() as s:
        stored = s.scalars(
            select(LotPolicyVersion.body).where(LotPolicyVersion.lot_id == world.lot_id)
        ).all()
    assert derived in stored  # v1, what earlier bookings were priced with


# -- access lists -------------------------------------------------------------------------------


def test_add_list_and_remove_an_entry_pushes_each_change(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    auth = world.auth("operator")
    entry = {
        "plate": "b-pg 101",
        "kind": "allow",
        "category": "staff",
        "valid_from": T0.isoformat(),
        "valid_until": (T0 + 24 * H).isoformat(),
        "note": "facility manager",
        "lanes": ["entry-1"],
    }
    r = client.post(f"/lots/{world.lot_id}/access-list", json=entry, headers=auth)
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["entry_id"].startswith("acl_") and added["plate"] == "BPG101"
    assert (added["conflicts"], added["effective"]) == ([], "allow")
    listed = client.get(f"/lots/{world.lot_id}/access-list?plate=B-PG-101", headers=auth).json()
    assert [e["entry_id"] for e in listed["entries"]] == [added["entry_id"]]
    put = _feed(db, world.lot_id)[-1]
    change = change_from_feed(world.lot_id, put.seq, put.kind, dict(put.payload))
    assert change.kind is ChangeKind.LIST_PUT and change.list_entry is not None
    assert change.list_entry.entry_id == added["entry_id"] and change.list_entry.lanes == [
        "entry-1"
    ]
    r = client.delete(f"/lots/{world.lot_id}/access-list/{added['entry_id']}", headers=auth)
    assert r.status_code == 204
    removed = _feed(db, world.lot_id)[-1]
    assert removed.kind == "list_remove"
    assert removed.payload["list_entry"]["entry_id"] == added["entry_id"]
    again = client.delete(f"/lots/{world.lot_id}/access-list/{added['entry_id']}", headers=auth)
    assert again.status_code == 404
    actions = [a["action"] for a in client.get(f"/lots/{world.lot_id}/audit", headers=auth).json()]
    assert actions[:2] == ["access_list.removed", "access_list.added"]


def test_allow_and_deny_of_one_plate_deny_wins_and_the_answer_says_so(
    client: TestClient, world: World
) -> None:
    auth = world.auth("operator")
    url = f"/lots/{world.lot_id}/access-list"
    allow = client.post(url, json={"plate": "AB123", "kind": "allow"}, headers=auth).json()
    deny = client.post(url, json={"plate": "AB123", "kind": "deny"}, headers=auth)
    assert deny.status_code == 201
    assert deny.json()["conflicts"] == [allow["entry_id"]]
    assert deny.json()["effective"] == "deny" and deny.json()["category"] == "blocked"
    listed = client.get(url, headers=auth).json()["entries"]
    assert {e["effective"] for e in listed} == {"deny"}
    later = {
        "plate": "AB123",
        "kind": "allow",
        "valid_from": (T0 + 48 * H).isoformat(),
        "lanes": ["x"],
    }
    # a deny without lanes or window overlaps every allow of the plate
    assert client.post(url, json=later, headers=auth).json()["effective"] == "deny"


def test_online_access_obeys_the_lists(client: TestClient, world: World) -> None:
    auth = world.auth("operator")
    url = f"/lots/{world.lot_id}/access-list"
    ask = f"/parkingAccess?plate=ZZ999&parking_lot_id={world.lot_id}"
    assert client.get(ask, headers=world.auth("device")).json()["reason"] == "no_reservation"
    client.post(url, json={"plate": "ZZ999", "kind": "allow"}, headers=auth)
    assert client.get(ask, headers=world.auth("device")).json()["reason"] == "allowlisted"
    future = {"plate": "ZZ999", "kind": "deny", "valid_from": (T0 + H).isoformat()}
    client.post(url, json=future, headers=auth)
    assert client.get(ask, headers=world.auth("device")).json()["allowed"] is True
    client.post(url, json={"plate": "ZZ999", "kind": "deny"}, headers=auth)
    answer = client.get(ask, headers=world.auth("device")).json()
    assert (answer["allowed"], answer["reason"]) == (False, "denylisted")


BAD_ENTRIES: dict[str, tuple[dict[str, Any], str]] = {
    "invalid plate": ({"plate": "!!", "kind": "deny"}, "plate"),
    "window ends before it starts": (
        {
            "plate": "AB123",
            "kind": "allow",
            "valid_from": (T0 + H).isoformat(),
            "valid_until": T0.isoformat(),
        },
        "valid_until",
    ),
    "unknown category": ({"plate": "AB123", "kind": "allow", "category": "vip"}, "category"),
    "unknown kind": ({"plate": "AB123", "kind": "maybe"}, "kind"),
    "naive time": (
        {"plate": "AB123", "kind": "allow", "valid_from": "2030-01-01T00:00"},
        "valid_from",
    ),
    "empty lanes": ({"plate": "AB123", "kind": "allow", "lanes": []}, "lanes"),
}


@pytest.mark.parametrize("case", BAD_ENTRIES)
def test_bad_entries_are_422_naming_the_field_and_change_nothing(
    client: TestClient, world: World, db: sessionmaker[Session], case: str
) -> None:
    body, field = BAD_ENTRIES[case]
    counts = _counts(db, world.lot_id)
    r = client.post(f"/lots/{world.lot_id}/access-list", json=body, headers=world.auth("operator"))
    assert r.status_code == 422, r.text
    assert field in [e["loc"][1] for e in r.json()["detail"]], r.json()
    assert _counts(db, world.lot_id) == counts


# -- CSV ----------------------------------------------------------------------------------------

CSV = (
    "plate,kind,category,valid_from,valid_until,note,lanes\n"
    "B-PG-101,allow,staff,2030-01-01T00:00:00+01:00,,Facility manager,\n"
    "M-XX-99,deny,blocked,,,Stolen,entry-1;entry-2\n"
    "HH-R-7,allow,resident,,2031-01-01T00:00:00Z,Flat 7,\n"
)


def _import(client: TestClient, world: World, text: str, mode: str = "add") -> Any:
    headers = world.auth("operator") | {"Content-Type": "text/csv"}
    url = f"/lots/{world.lot_id}/access-list/import?mode={mode}"
    return client.post(url, content=text.encode(), headers=headers)


def test_csv_import_is_one_lists_replaced_change_and_exports_back(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    before = len(_feed(db, world.lot_id))
    r = _import(client, world, CSV)
    assert r.status_code == 200, r.text
    assert r.json() == {"mode": "add", "added": 3, "removed": 0}
    feed = _feed(db, world.lot_id)
    assert [c.kind for c in feed[before:]] == ["lists_replaced"]
    change = change_from_feed(world.lot_id, feed[-1].seq, feed[-1].kind, dict(feed[-1].payload))
    assert change.kind is ChangeKind.LISTS_REPLACED
    page = _snapshot(db, world.lot_id)
    assert page.list_entries is not None
    assert sorted(e.plate for e in page.list_entries) == ["BPG101", "HHR7", "MXX99"]
    csv_please = world.auth("admin") | {"Accept": "text/csv"}
    exported = client.get(f"/lots/{world.lot_id}/access-list", headers=csv_please)
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0] == "plate,kind,category,valid_from,valid_until,note,lanes"
    assert "MXX99,deny,blocked,,,Stolen,entry-1 entry-2" in lines
    replaced = _import(client, world, "plate,kind\nAB123,deny\n", mode="replace")
    assert replaced.json() == {"mode": "replace", "added": 1, "removed": 3}
    listed = client.get(f"/lots/{world.lot_id}/access-list", headers=world.auth("admin")).json()
    assert [e["plate"] for e in listed["entries"]] == ["AB123"]


def test_a_csv_with_bad_rows_applies_nothing_and_names_each_row(
    client: TestClient, world: World, db: sessionmaker[Session]
) -> None:
    _import(client, world, CSV)
    counts = _counts(db, world.lot_id)
    bad = (
        CSV + "!!,deny,,,,,\nAB1,allow,vip,,,,\nAB2,allow,,2030-02-01T00:00Z,2030-01-01T00:00Z,,\n"
    )
    r = _import(client, world, bad, mode="replace")
    assert r.status_code == 422 and r.json()["reason"] == "invalid_rows"
    assert [(e["row"], e["field"]) for e in r.json()["detail"]] == [
        (5, "plate"),
        (6, "category"),
        (7, "valid_until"),
    ]
    assert _counts(db, world.lot_id) == counts
    header = _import(client, world, "plate,colour\nAB1,red\n")
    assert header.status_code == 422 and header.json()["detail"][0]["row"] == 1
    wrong_type = client.post(
        f"/lots/{world.lot_id}/access-list/import",
        content=CSV.encode(),
        headers=world.auth("operator") | {"Content-Type": "application/json"},
    )
    assert wrong_type.status_code == 415
    assert _counts(db, world.lot_id) == counts
