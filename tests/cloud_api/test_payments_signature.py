"""The webhook signature scheme, table-tested, and checked against the Stripe SDK's own verifier."""

from __future__ import annotations

import time

import pytest
import stripe

from cloud_api.payments.signature import (
    InvalidSignature,
    StaleSignature,
    compute_signature,
    signature_header,
    verify_signature,
)

SECRET = "whsec_test_signature"
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded"}'
NOW = 1_800_000_000


def test_round_trip_returns_timestamp() -> None:
    header = signature_header(BODY, SECRET, timestamp=NOW)
    assert verify_signature(BODY, header, SECRET, now=NOW + 10) == NOW


def test_several_v1_signatures_one_matching() -> None:
    good = compute_signature(BODY, SECRET, NOW)
    header = f"t={NOW},v1={'0' * 64},v0=abc,v1={good}"
    assert verify_signature(BODY, header, SECRET, now=NOW) == NOW


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"v1={'a' * 64}",
        f"t=abc,v1={'a' * 64}",
        f"t={NOW}",
        f"t={NOW},v0=deadbeef",
        f"t={NOW},v1={'a' * 64}",
        f"t={NOW},v1=\u00e9\u00e9",
    ],
)
def test_malformed_or_wrong_headers_are_invalid(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, SECRET, now=NOW)


def test_body_tampering_is_invalid() -> None:
    header = signature_header(BODY, SECRET, timestamp=NOW)
    with pytest.raises(InvalidSignature):
        verify_signature(BODY + b" ", header, SECRET, now=NOW)


def test_other_secret_is_invalid() -> None:
    header = signature_header(BODY, "whsec_other", timestamp=NOW)
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, SECRET, now=NOW)


def test_empty_secret_never_verifies() -> None:
    header = signature_header(BODY, "", timestamp=NOW)
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, "", now=NOW)


@pytest.mark.parametrize(
    ("offset", "stale"), [(300, False), (301, True), (-300, False), (-301, True)]
)
def test_tolerance_is_300_seconds_both_ways(offset: int, stale: bool) -> None:
    header = signature_header(BODY, SECRET, timestamp=NOW)
    if stale:
        with pytest.raises(StaleSignature):
            verify_signature(BODY, header, SECRET, now=NOW + offset)
    else:
        verify_signature(BODY, header, SECRET, now=NOW + offset)


def test_stale_is_only_reported_for_a_valid_signature() -> None:
    header = f"t={NOW},v1={'a' * 64}"
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, SECRET, now=NOW + 10_000)


def test_same_scheme_as_the_stripe_sdk() -> None:
    ts = int(time.time())
    ours = signature_header(BODY, SECRET, timestamp=ts)
    stripe.WebhookSignature.verify_header(BODY.decode(), ours, SECRET, tolerance=300)
    sdk = stripe.WebhookSignature._compute_signature(f"{ts}.{BODY.decode()}", SECRET)
    assert verify_signature(BODY, f"t={ts},v1={sdk}", SECRET) == ts
