"""Booking access codes: what a code is, and every way one is refused, each with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import parkgate_protocol as p
from parkgate_protocol import AccessCodeError, SigningKey, check_access_code, sign_access_code

NOW = datetime(2030, 6, 1, 8, 0, tzinfo=UTC)
KEY = SigningKey("k1", b"\x01" * 32)
NEW_KEY = SigningKey("k2", b"\x02" * 32)


def code(lot: str = "12", booking: str = "bk_ABCDEFGHIJKLMNOP", key: SigningKey = KEY) -> str:
    return sign_access_code(
        key, lot_id=lot, booking_id=booking, expires_at=NOW + timedelta(hours=3)
    )


def refusal(
    text: str, *, lot: str = "12", keys: tuple[SigningKey, ...] = (KEY,), now: datetime = NOW
) -> str:
    with pytest.raises(AccessCodeError) as caught:
        check_access_code(text, lot_id=lot, keys=keys, now=now)
    assert text not in str(caught.value) or not text  # a code is a credential: never echoed
    return caught.value.reason


def test_a_code_is_short_and_verifies_for_its_lot_until_it_expires() -> None:
    text = code()
    assert len(text) <= 70 and text.count(".") == 5
    checked = check_access_code(text, lot_id="12", keys=[NEW_KEY, KEY], now=NOW)
    assert (checked.lot_id, checked.booking_id, checked.kid) == ("12", "bk_ABCDEFGHIJKLMNOP", "k1")
    assert checked.expires_at == NOW + timedelta(hours=3)
    assert check_access_code(f"  {text}\n", lot_id="12", keys=[KEY], now=checked.expires_at)


def test_each_refusal_has_its_own_reason() -> None:
    text = code()
    head, mac = text.rsplit(".", 1)
    flipped = head + "." + ("a" if mac[0] != "a" else "b") + mac[1:]
    assert refusal(flipped) == "code_invalid"  # one character of the signature changed
    assert refusal(code(key=SigningKey("k1", b"\x09" * 32))) == "code_invalid"  # forged key
    assert refusal(code(), keys=(NEW_KEY,)) == "code_invalid"  # a key the lot does not hold
    assert refusal(text.replace(".bk_", ".bk_X", 1)) == "code_invalid"  # another booking
    assert refusal("hello world") == "code_invalid"
    assert refusal(code(lot="13")) == "code_other_lot"
    assert refusal(text, now=NOW + timedelta(hours=3, seconds=1)) == "code_expired"


def test_a_retired_key_no_longer_verifies() -> None:
    retiring = SigningKey("k1", KEY.secret, retires_at=NOW + timedelta(hours=1))
    assert check_access_code(code(), lot_id="12", keys=[NEW_KEY, retiring], now=NOW)
    later = NOW + timedelta(hours=1)
    assert refusal(code(), keys=(NEW_KEY, retiring), now=later) == "code_invalid"


def test_ids_outside_the_alphabet_cannot_be_signed() -> None:
    with pytest.raises(AccessCodeError):
        code(booking="bk.1")
    with pytest.raises(ValueError):
        sign_access_code(KEY, lot_id="1", booking_id="b", expires_at=datetime(2030, 1, 1))


@given(st.text(max_size=300))
def test_any_text_is_refused_cleanly(text: str) -> None:
    with pytest.raises(AccessCodeError) as caught:
        check_access_code(text, lot_id="12", keys=[KEY], now=NOW)
    assert caught.value.reason in ("code_invalid", "code_other_lot", "code_expired")


def test_keys_travel_on_the_feed_with_the_secret_hidden_from_repr() -> None:
    secret = "A" * 43
    change = p.ReservationChange(
        lot_id="12",
        seq=3,
        kind=p.ChangeKind.ACCESS_KEYS,
        access_keys=[{"kid": "k1", "secret": secret}],
    )
    assert secret not in repr(change)
    parsed = p.parse_reservation_change(p.encode(change))
    assert parsed.access_keys is not None
    assert parsed.access_keys[0].secret_bytes() == b"\x00" * 32
    with pytest.raises(p.ProtocolError):
        p.parse_reservation_change(p.encode(change).replace(secret.encode(), b"short"))
    with pytest.raises(ValueError):
        p.ReservationChange(lot_id="12", seq=3, kind=p.ChangeKind.ACCESS_KEYS)
    with pytest.raises(ValueError):  # keys ride only on their own kind or a snapshot
        p.ReservationChange(
            lot_id="12", seq=3, kind=p.ChangeKind.REMOVE, reservation_id="x", access_keys=[]
        )
    with pytest.raises(ValueError):
        p.ChangesPage(lot_id="12", snapshot=False, access_keys=[], next_since=0, latest_seq=0)
