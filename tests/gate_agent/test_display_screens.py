"""The lane display's words: every reason mapped, every message translated, the pay link built
in one place. Pure functions, table tests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent.config import ConfigError, parse_config
from gate_agent.display import (
    PassView,
    ScreenState,
    catalogue,
    languages,
    pay_url,
    screen_for_pass,
)
from gate_agent.display._catalogue import _load
from gate_agent.domain import Direction, Reason

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EN = catalogue("en")
ENTRY, EXIT = Direction.ENTRY, Direction.EXIT
PAY = "https://cloud.example/lots/lot-1/pay?plate=K179658"


def show(view: PassView, pay: str | None = None, language: str = "en") -> Any:
    return screen_for_pass(view, catalogue(language), pay_url=pay, now=NOW, tz=UTC)


@pytest.mark.parametrize(
    ("view", "state", "headline", "rest"),
    [
        (
            PassView("reservation_valid", True, ENTRY, "K179658", space_label="B12"),
            ScreenState.OPEN,
            "Welcome K179658",
            "Your space: B12",
        ),
        (PassView("allowlisted", True, ENTRY, "K179658"), ScreenState.OPEN, "Welcome K179658", ""),
        (PassView("manual_open", True, ENTRY), ScreenState.OPEN, "Welcome", ""),
        (
            PassView("drive_up", True, ENTRY, "K179658"),
            ScreenState.OPEN,
            "Welcome K179658",
            "you pay when you leave",
        ),
        (PassView("exit_paid", True, EXIT, "K179658"), ScreenState.OPEN, "Goodbye", "safe"),
        (PassView("paid", True, EXIT, "K179658"), ScreenState.OPEN, "Goodbye", "Thank you"),
        (
            PassView("bill_later", True, EXIT, "K179658", amount_owed_cents=450),
            ScreenState.OPEN,
            "Goodbye",
            "4.50 € will be charged to your booking",
        ),
        (
            PassView("no_reservation", False, ENTRY, "CCLVN3"),
            ScreenState.DENIED,
            "No booking found for CCLVN3",
            "Scan your booking QR code under the camera or press Help",
        ),
        (
            PassView("too_early", False, ENTRY, "K1", starts_at=NOW + timedelta(hours=2)),
            ScreenState.DENIED,
            "Your booking starts at 14:00",
            "come back",
        ),
        (
            PassView("too_early", False, ENTRY, "K1", starts_at=NOW + timedelta(days=2)),
            ScreenState.DENIED,
            "Your booking starts at 2026-12-03 12:00",
            "come back",
        ),
        (PassView("not_paid", False, ENTRY, "K1"), ScreenState.DENIED, "not paid", "Help"),
        (PassView("expired", False, ENTRY, "K1"), ScreenState.DENIED, "has ended", "Help"),
        (PassView("cancelled", False, ENTRY, "K1"), ScreenState.DENIED, "cancelled", "Help"),
        (PassView("already_inside", False, ENTRY, "K1"), ScreenState.DENIED, "inside", "Help"),
        (PassView("low_confidence", False, ENTRY, "K1"), ScreenState.DENIED, "could not", "camera"),
        (PassView("ambiguous_match", False, ENTRY), ScreenState.DENIED, "could not", "camera"),
        (PassView("no_plate", False, ENTRY), ScreenState.DENIED, "could not read", "camera"),
        (PassView("denylisted", False, ENTRY, "K1"), ScreenState.DENIED, "not possible", "Help"),
        (PassView("lot_full", False, ENTRY, "K1"), ScreenState.DENIED, "full", "visitor space"),
        (
            PassView("something_new", False, ENTRY, "K1"),
            ScreenState.DENIED,
            "Please wait — an operator has been called",
            "",
        ),
    ],
)
def test_every_reason_says_what_happened_and_what_to_do(
    view: PassView, state: ScreenState, headline: str, rest: str
) -> None:
    screen = show(view)
    assert screen.state is state
    assert headline in screen.headline
    assert rest in f"{screen.detail} {screen.hint}"
    assert screen.pay_url is None


def test_every_known_reason_has_words_of_its_own() -> None:
    generic = EN.text("operator_called")
    for reason in Reason:
        for direction in Direction:
            screen = show(PassView(reason.value, reason.value in OPENING, direction, "K1"))
            assert screen.headline != generic, reason


OPENING = {"reservation_valid", "allowlisted", "exit_paid", "bill_later", "manual_open"}
OPENING |= {"soft_passback", "drive_up", "paid", "booking_code"}


def test_owing_shows_the_amount_and_the_pay_link_or_the_pay_station() -> None:
    view = PassView("payment_due", False, EXIT, "K179658", amount_owed_cents=1250)
    with_link = show(view, PAY)
    assert with_link.state is ScreenState.OWES
    assert with_link.headline == "Please pay 12.50 €"
    assert with_link.pay_url == PAY and "Scan the code" in with_link.hint
    without = show(view, None)
    assert without.pay_url is None and without.hint == "Please pay at the pay station"
    assert show(view, PAY, "de").headline == "Bitte 12,50 € bezahlen"


def test_screens_speak_the_language_asked_for_and_english_otherwise() -> None:
    view = PassView("no_reservation", False, ENTRY, "CCLVN3")
    assert show(view, language="de").headline == "Keine Buchung für CCLVN3 gefunden"
    assert show(view, language="fr").headline == "Aucune réservation pour CCLVN3"
    assert show(view, language="nl").headline == "Geen boeking gevonden voor CCLVN3"
    assert show(view, language="xx").headline == "No booking found for CCLVN3"
    assert catalogue(None).language == "en"


PLACEHOLDER = re.compile(r"\{(\w*)\}")


def test_every_message_has_a_translation_with_the_same_placeholders() -> None:
    shipped = languages()
    assert {"en", "de", "fr", "nl"} <= set(shipped)
    english = _load("en")
    for language in shipped:
        messages = _load(language)
        assert set(messages) == set(english), language
        for key, text in english.items():
            translated = messages[key]
            assert translated.strip(), (language, key)
            assert set(PLACEHOLDER.findall(translated)) == set(PLACEHOLDER.findall(text)), (
                language,
                key,
            )
            if language != "en" and key not in ("decimal_separator", "welcome"):
                assert translated != text or key == "offline", (language, key)


def config(**sections: Any) -> Any:
    return parse_config(
        {
            "lot": {"id": "lot-1", "data_dir": str(Path("/tmp/unused"))},
            **sections,
            "lanes": [
                {
                    "id": "entry-1",
                    "direction": "entry",
                    "camera": {"kind": "replay", "path": "/tmp/unused"},
                    "barrier": {"kind": "dry-run"},
                }
            ],
        }
    )


def test_the_pay_link_comes_from_the_config_in_one_place() -> None:
    assert pay_url(config(), "K179658") is None  # no cloud: pay station
    cloud = config(sync={"cloud_url": "https://cloud.example/"})
    assert pay_url(cloud, "K 17/9") == "https://cloud.example/lots/lot-1/pay?plate=K%2017%2F9"
    assert pay_url(cloud, None) is None
    own = config(
        sync={"cloud_url": "https://cloud.example"},
        display={"pay_url_template": "https://pay.example/{lot_id}?p={plate}"},
    )
    assert pay_url(own, "K179658") == "https://pay.example/lot-1?p=K179658"


@pytest.mark.parametrize(
    "template", ["https://pay.example/{lot}", "ftp://pay.example/{plate}", "https://x/{0}"]
)
def test_a_pay_link_template_with_unknown_fields_is_refused(template: str) -> None:
    with pytest.raises(ConfigError, match=r"display\.pay_url_template"):
        config(display={"pay_url_template": template})
