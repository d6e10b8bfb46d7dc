"""``lot_changes`` rows as wire changes (``cloud_api.changes.change_from_feed``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import parkgate_protocol as p
from cloud_api.changes import change_from_feed

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
