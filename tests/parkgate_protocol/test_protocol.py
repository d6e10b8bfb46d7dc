"""The wire contract: topics, round trips, and strict parsing with one error type."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import parkgate_protocol as p

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SNAP = {
    "id": "bk_1",
    "plate": "AB123CD",
    "starts_at": "2026-03-02T12:00:00+00:00",
    "ends_at": "2026-03-02T14:00:00+00:00",
    "status": "confirmed",
    "amount_owed_cents": 0,
    "currency": "EUR",
    "space_label": "A-1",
}


def change(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"v": 1, "lot_id": "lot-a", "seq": 5, "kind": "upsert"}
    body["reservation"] = SNAP
    body.update(overrides)
    return body


def test_topics_build_and_parse() -> None:
    assert p.topic("lot-a", "events") == "parkgate/v1/lots/lot-a/events"
    for channel in p.CHANNELS:
        assert p.parse_topic(p.topic("lot_9", channel)) == ("lot_9", channel)
    assert p.shared_subscription("events") == "$share/cloud/parkgate/v1/lots/+/events"


@pytest.mark.parametrize(
    "name",
    [
        "parkgate/v2/lots/a/events",
        "parkgate/v1/lots/a/events/x",
        "parkgate/v1/lots/a/telemetry",
        "parkgate/v1/lots/+/events",
        "parkgate/v1/lots//events",
        "parkgate/v1/lots/a b/events",
    ],
)
def test_bad_topics(name: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_topic(name)
    assert info.value.reason == "bad_topic"


def test_topic_refuses_wildcards_in_lot_id() -> None:
    with pytest.raises(p.ProtocolError):
        p.topic("lot/#", "events")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "not_an_object"),
        (json.dumps(change(v=2)), "unsupported_version"),
        (json.dumps({k: v for k, v in change().items() if k != "v"}), "unsupported_version"),
        (json.dumps(change(seq=0)), "invalid"),
        (json.dumps(change(kind="teleport")), "invalid"),
        (json.dumps(change(extra=1)), "invalid"),
        (json.dumps(change(reservation=None)), "invalid"),
        (json.dumps(change(reservation_id="bk_1")), "invalid"),  # not for an upsert
        (json.dumps(change(kind="remove", reservation=None)), "invalid"),
        (json.dumps(change(reservation={**SNAP, "starts_at": "2026-03-02T12:00:00"})), "invalid"),
        (json.dumps(change(reservation={**SNAP, "status": "maybe"})), "invalid"),
        (json.dumps(change(lot_id="lot/#")), "invalid"),
        (b"{" + b" " * p.MAX_MESSAGE_BYTES + b"}", "too_large"),
    ],
)
def test_malformed_changes_raise_one_error_with_a_reason(payload: bytes | str, reason: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_reservation_change(payload)
    assert info.value.reason == reason


def test_errors_never_echo_values() -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_reservation_change(
            json.dumps(change(reservation={**SNAP, "status": "SECRETPLATE"}))
        )
    assert "SECRETPLATE" not in str(info.value)
    assert "reservation.status" in str(info.value)


def test_list_and_snapshot_changes() -> None:
    entry = {"plate": "ZZ9", "kind": "allow", "valid_until": "2026-04-01T00:00:00Z"}
    put = p.parse_reservation_change(
        json.dumps(change(kind="list_put", reservation=None, list_entry=entry))
    )
    assert put.list_entry is not None and put.list_entry.kind is p.ListKind.ALLOW
    snap = p.parse_reservation_change(
        json.dumps(
            change(kind="snapshot", reservation=None, reservations=[SNAP], list_entries=[entry])
        )
    )
    assert snap.reservations is not None and len(snap.reservations) == 1


def test_status_and_will() -> None:
    will = p.Status(lot_id="lot-a", state="offline")
    assert p.parse_status(p.encode(will)).state == "offline"
    beat = p.Status(
        lot_id="lot-a",
        state="online",
        at=T0,
        outbox_depth=3,
        last_applied_seq=9,
        lanes=[p.LaneHealth(lane_id="entry-1", direction=p.Direction.ENTRY, frames=10)],
    )
    assert p.parse_status(p.encode(beat)) == beat
    with pytest.raises(p.ProtocolError):
        p.parse_status(json.dumps({"v": 1, "lot_id": "lot-a", "state": "sleepy"}))


def test_event_ack() -> None:
    ack = p.EventAck(lot_id="lot-a", event_ids=["e1", "e2"], acked_at=T0)
    assert p.parse_event_ack(p.encode(ack)) == ack
    assert p.parse_topic(p.topic("lot-a", "acks")) == ("lot-a", "acks")
    good = json.loads(p.encode(ack))
    for broken in (
        {**good, "event_ids": []},
        {**good, "event_ids": [""]},
        {**good, "event_ids": ["e"] * (p.MAX_ACK_IDS + 1)},
        {**good, "acked_at": "2026-03-02T12:00:00"},
        {**good, "stored": 2},
        {k: v for k, v in good.items() if k != "lot_id"},
    ):
        with pytest.raises(p.ProtocolError) as info:
            p.parse_event_ack(json.dumps(broken))
        assert info.value.reason == "invalid"
    with pytest.raises(p.ProtocolError) as info:
        p.parse_event_ack(json.dumps({**good, "v": 2}))
    assert info.value.reason == "unsupported_version"


def test_commands() -> None:
    open_cmd = {
        "v": 1,
        "command_id": "c1",
        "lot_id": "lot-a",
        "kind": "open_lane",
        "issued_at": T0.isoformat(),
        "expires_at": (T0 + timedelta(seconds=30)).isoformat(),
        "lane_id": "entry-1",
        "actor": "alice",
        "reason": "ticket machine broken",
    }
    assert p.parse_command(json.dumps(open_cmd)).kind is p.CommandKind.OPEN_LANE
    for missing in ("actor", "reason", "lane_id", "expires_at"):
        with pytest.raises(p.ProtocolError) as info:
            p.parse_command(json.dumps({k: v for k, v in open_cmd.items() if k != missing}))
        assert missing in str(info.value)
    resync = {
        "v": 1,
        "command_id": "c2",
        "lot_id": "lot-a",
        "kind": "resync",
        "issued_at": T0.isoformat(),
    }
    assert p.parse_command(json.dumps(resync)).full is True


def test_changes_page() -> None:
    changes = [change(seq=s) for s in (4, 5, 6)]
    page = {
        "v": 1,
        "lot_id": "lot-a",
        "snapshot": False,
        "changes": changes,
        "next_since": 6,
        "latest_seq": 9,
    }
    parsed = p.parse_changes_page(json.dumps(page))
    assert [c.seq for c in parsed.changes] == [4, 5, 6]
    snapshot = {
        "v": 1,
        "lot_id": "lot-a",
        "snapshot": True,
        "reservations": [SNAP],
        "next_since": 9,
        "latest_seq": 9,
    }
    assert p.parse_changes_page(json.dumps(snapshot)).reservations[0].id == "bk_1"
    broken = [
        {**page, "changes": [change(seq=4), change(seq=6)], "next_since": 6},  # hole
        {**page, "next_since": 5},  # not the last seq
        {**page, "latest_seq": 5},  # next_since past latest
        {**snapshot, "changes": changes},  # snapshot with changes
        {**page, "reservations": [SNAP]},  # changes page with a snapshot
        {**page, "changes": [change(seq=4, lot_id="lot-b")], "next_since": 4},  # another lot
    ]
    for body in broken:
        with pytest.raises(p.ProtocolError):
            p.parse_changes_page(json.dumps(body))


def test_reservation_change_round_trip() -> None:
    parsed = p.parse_reservation_change(json.dumps(change()))
    assert p.parse_reservation_change(p.encode(parsed)) == parsed
    assert parsed.reservation is not None
    assert parsed.reservation.status is p.ReservationStatus.CONFIRMED
    assert parsed.reservation.starts_at == T0


def test_stay_paid_change_and_stay_fields() -> None:
    paid = {
        "stay_id": "v_91",
        "plate": "AB123CD",
        "paid_cents": 450,
        "currency": "EUR",
        "paid_through": "2026-03-02T14:05:00Z",
        "payment_id": "731",
    }
    parsed = p.parse_reservation_change(
        json.dumps(change(kind="stay_paid", reservation=None, stay_payment=paid))
    )
    assert parsed.stay_payment is not None and parsed.stay_payment.paid_cents == 450
    with pytest.raises(p.ProtocolError):  # the payload is required
        p.parse_reservation_change(json.dumps(change(kind="stay_paid", reservation=None)))
    with pytest.raises(p.ProtocolError):  # and only taken by its own kind
        p.parse_reservation_change(json.dumps(change(stay_payment=paid)))
    with pytest.raises(p.ProtocolError):
        p.parse_reservation_change(
            json.dumps(
                change(kind="stay_paid", reservation=None, stay_payment={**paid, "paid_cents": -1})
            )
        )
    beat = p.Status(
        lot_id="lot-a", state="online", at=T0, clock_offset_s=-2.5, cars_inside=3, drive_up_inside=1
    )
    assert p.parse_status(p.encode(beat)) == beat
