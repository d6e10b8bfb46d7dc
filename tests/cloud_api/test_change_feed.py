"""``lot_changes`` rows as wire changes (``cloud_api.changes.change_from_feed``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import parkgate_protocol as p
from cloud_api.changes import change_from_feed

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SNAP = p.ReservationSnapshot(
    id="bk_1",
    plate="AB123CD",
    starts_at=T0,
    ends_at=T0 + timedelta(hours=2),
    status=p.ReservationStatus.CONFIRMED,
).model_dump(mode="json")


def test_business_kinds_become_upserts_with_their_cause() -> None:
    made = change_from_feed(7, 3, "paid", SNAP, T0)
    assert (made.lot_id, made.seq, made.kind, made.cause) == ("7", 3, p.ChangeKind.UPSERT, "paid")
    assert made.changed_at == T0


def test_wire_kinds_are_taken_as_they_are() -> None:
    removal = change_from_feed("lot-a", 4, "remove", {"reservation_id": "bk_1"})
    assert removal.kind is p.ChangeKind.REMOVE


def test_a_bad_row_is_a_protocol_error_without_its_values() -> None:
    with pytest.raises(p.ProtocolError) as info:
        change_from_feed(7, 3, "created", {**SNAP, "plate": ""})
    assert info.value.reason == "invalid"
    assert "AB123CD" not in str(info.value)
