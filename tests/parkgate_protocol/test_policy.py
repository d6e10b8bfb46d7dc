"""The lot policy on the wire: round trips, refusals a gate must survive, and the change kinds
that carry it."""

from __future__ import annotations

import json
from typing import Any

import pytest

import parkgate_protocol as p


def policy(**overrides: Any) -> dict[str, Any]:
    return {**p.LotPolicy(version=3).to_wire(), **overrides}


def test_defaults_round_trip_through_the_wire() -> None:
    sent = p.LotPolicy(version=1, anti_passback=p.AntiPassbackMode.SOFT, language="de")
    received = p.parse_policy(json.loads(json.dumps(sent.to_wire())))
    assert received == sent
    assert received.tariff == p.default_tariff()
    assert sent.to_wire()["schema"] == p.POLICY_SCHEMA


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"schema": p.POLICY_SCHEMA + 1, "new_rule": True}, "unsupported_policy"),
        ({"schema": "2"}, "unsupported_policy"),
        ({"version": 0}, "invalid"),
        ({"early_grace_minutes": -1}, "invalid"),
        ({"min_confidence": 1.5}, "invalid"),
        ({"min_confidence": 0.95, "fuzzy_min_confidence": 0.9}, "invalid"),
        ({"anti_passback": "sometimes"}, "invalid"),
        ({"offline_exit": "teleport"}, "invalid"),
        ({"language": "English"}, "invalid"),
        ({"tariff": {"vehicles": {"car": {"rate_cents": -5}}}}, "invalid"),
        ({"surprise": 1}, "invalid"),
    ],
)
def test_a_policy_the_gate_cannot_apply_is_one_error(
    overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_policy(policy(**overrides))
    assert info.value.reason == reason


def test_a_policy_change_parses_even_when_its_policy_is_newer() -> None:
    """The feed advances past a policy this gate cannot apply; only the policy is refused."""
    body = {
        "v": 1,
        "lot_id": "lot-a",
        "seq": 9,
        "kind": "policy",
        "policy": policy(schema=p.POLICY_SCHEMA + 1, new_rule=True),
    }
    change = p.parse_reservation_change(json.dumps(body))
    assert change.kind is p.ChangeKind.POLICY and change.policy is not None
    with pytest.raises(p.ProtocolError):
        p.parse_policy(change.policy)


def test_policy_and_lists_replaced_changes_take_only_their_fields() -> None:
    with pytest.raises(p.ProtocolError):
        p.parse_reservation_change(json.dumps({"v": 1, "lot_id": "a", "seq": 1, "kind": "policy"}))
    bulk = {"v": 1, "lot_id": "a", "seq": 2, "kind": "lists_replaced"}
    assert p.parse_reservation_change(json.dumps(bulk)).kind is p.ChangeKind.LISTS_REPLACED
    with pytest.raises(p.ProtocolError):
        p.parse_reservation_change(json.dumps({**bulk, "policy": policy()}))


def test_access_list_entries_carry_id_category_and_lanes() -> None:
    entry = {
        "entry_id": "acl_1",
        "plate": "AB123",
        "kind": "allow",
        "category": "staff",
        "lanes": ["entry-1"],
    }
    body = {"v": 1, "lot_id": "a", "seq": 3, "kind": "list_put", "list_entry": entry}
    change = p.parse_reservation_change(json.dumps(body))
    assert change.list_entry is not None
    assert change.list_entry.category is p.AccessCategory.STAFF
    assert change.list_entry.lanes == ["entry-1"]
    with pytest.raises(p.ProtocolError):
        p.parse_reservation_change(json.dumps({**body, "list_entry": {**entry, "category": "vip"}}))


def test_snapshot_pages_carry_the_policy_and_status_says_which_is_in_force() -> None:
    page = p.ChangesPage(lot_id="a", snapshot=True, policy=policy(), next_since=4, latest_seq=4)
    assert p.parse_changes_page(p.encode(page)).policy == policy()
    with pytest.raises(ValueError):
        p.ChangesPage(lot_id="a", snapshot=False, policy=policy(), next_since=0, latest_seq=0)
    status = p.Status(lot_id="a", state="online", policy_version=3, policy_problem="invalid: x")
    assert p.parse_status(p.encode(status)).policy_version == 3
