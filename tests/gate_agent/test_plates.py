from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.confusions import derive
from gate_agent.domain import CharOdds, MatchKind
from gate_agent.plates import (
    ALTERNATIVE_RATIO,
    CONFUSIONS_FILE,
    UNSURE_BELOW,
    explain,
    index_keys,
    is_one_edit,
    lookalike_key,
    lookalike_pairs,
    match,
    merge_odds,
    normalise,
    query_keys,
    same_plate,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ab-12 c", "AB12C"), (" KA 01 AB 1234 ", "KA01AB1234"), ("é·x_9", "X9"), ("", "")],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_lookalike_groups_collapse() -> None:
    assert lookalike_key("ODQ0 1I 2Z 5S 8B 6G".replace(" ", "")) == "0000112255886" + "6"


SURE = 0.99


def confs(read: str, **unsure: float) -> tuple[float, ...]:
    """Per-character confidences: SURE everywhere but at the 1-based positions given (p3=0.4)."""
    return tuple(unsure.get(f"p{i}", SURE) for i in range(1, len(read) + 1))


def odds(read: str, **alternatives: tuple[str, float]) -> tuple[CharOdds, ...]:
    """OCR odds: each character at SURE, but at the positions given (p6=("3", 0.3)) the
    character read shares the slot with that alternative."""
    result = []
    for i, ch in enumerate(read, 1):
        alt = alternatives.get(f"p{i}")
        result.append(((ch, SURE),) if alt is None else ((ch, 1.0 - alt[1]), alt))
    return tuple(result)


PAIRS = frozenset({frozenset("8B"), frozenset("HW")})
Row = tuple[str, tuple[float, ...], tuple[CharOdds, ...], list[str], MatchKind, str | None, str]
MATCH_TABLE: list[Row] = [
    ("ABC123", confs("ABC123"), (), ["ABC123", "ABC128"], MatchKind.EXACT, "ABC123", "exact"),
    ("ABC12O", confs("ABC12O"), (), ["ABC120"], MatchKind.EXACT, "ABC120", "exact (O≡0)"),
    # without odds: a substitution at a position the read is unsure of
    ("ABC124", confs("ABC124", p6=0.4), (), ["ABC123"], MatchKind.FUZZY, "ABC123", "unsure 6:4>3"),
    # ... but a sure read of a neighbour is a different car
    ("ABC124", confs("ABC124"), (), ["ABC123"], MatchKind.NONE, None, "no cached"),
    ("ABC124", confs("ABC124", p6=0.9), (), ["ABC123"], MatchKind.NONE, None, "no cached"),
    # with odds: the OCR must have given the cached character enough, absolutely and relatively
    (
        "ABC124",
        confs("ABC124", p6=0.7),
        odds("ABC124", p6=("3", 0.3)),
        ["ABC123"],
        MatchKind.FUZZY,
        "ABC123",
        "unsure 6:4>3 at 0.70 (OCR gave 3 0.300)",
    ),
    (
        "ABC124",
        confs("ABC124", p6=0.7),
        odds("ABC124", p6=("5", 0.3)),
        ["ABC123"],
        MatchKind.NONE,
        None,
        "no cached",
    ),
    (
        "ABC124",
        confs("ABC124", p6=0.95),
        odds("ABC124", p6=("3", 0.05)),
        ["ABC123"],
        MatchKind.NONE,
        None,
        "no cached",
    ),  # 0.05 < 0.1 × 0.95
    (
        "ABC124",
        confs("ABC124", p6=0.3),
        odds("ABC124", p6=("3", 0.005)),
        ["ABC123"],
        MatchKind.NONE,
        None,
        "no cached",
    ),  # below the absolute floor
    # a measured lookalike pair (8/B) is a known confusion: never explained by the read
    (
        "A8C123",
        confs("A8C123", p2=0.5),
        odds("A8C123", p2=("B", 0.5)),
        ["ABC123"],
        MatchKind.NONE,
        None,
        "no cached",
    ),
    ("A8C123", confs("A8C123", p2=0.3), (), ["ABC123"], MatchKind.NONE, None, "no cached"),
    # adjacent transposition: both positions must allow it
    (
        "FBZ9581",
        confs("FBZ9581", p2=0.5, p3=0.5),
        (),
        ["FZB9581"],
        MatchKind.FUZZY,
        "FZB9581",
        "transposed 2:B>Z",
    ),
    ("FBZ9581", confs("FBZ9581", p3=0.5), (), ["FZB9581"], MatchKind.NONE, None, "no cached"),
    ("FBZ9581", confs("FBZ9581"), (), ["FZB9581"], MatchKind.NONE, None, "no cached"),
    # a dropped first or last character, with an unsure edge
    ("K4W3L", confs("K4W3L", p1=0.6), (), ["FK4W3L"], MatchKind.FUZZY, "FK4W3L", "dropped first F"),
    ("FK4W3", confs("FK4W3", p5=0.6), (), ["FK4W3L"], MatchKind.FUZZY, "FK4W3L", "dropped last L"),
    ("K4W3L", confs("K4W3L"), (), ["FK4W3L"], MatchKind.NONE, None, "no cached"),
    ("FKW3L", confs("FKW3L", p2=0.3, p3=0.3), (), ["FK4W3L"], MatchKind.NONE, None, "no cached"),
    # an extra first or last character, read unsure (a screw, a sticker, the frame)
    ("3127KP", confs("3127KP", p6=0.43), (), ["3127K"], MatchKind.FUZZY, "3127K", "extra last P"),
    ("X3127K", confs("X3127K", p1=0.5), (), ["3127K"], MatchKind.FUZZY, "3127K", "extra first X"),
    ("3127KP", confs("3127KP"), (), ["3127K"], MatchKind.NONE, None, "no cached"),
    ("31X27K", confs("31X27K", p3=0.2), (), ["3127K"], MatchKind.NONE, None, "no cached"),
    # two substitutions are never explained
    ("ABC1234", confs("ABC1234", p7=0.2), (), ["ABC12"], MatchKind.NONE, None, "no cached"),
    ("AXC12Y", confs("AXC12Y", p2=0.3, p6=0.3), (), ["ABC120"], MatchKind.NONE, None, "no cached"),
    # two plates explained: the lane must not guess
    (
        "ABC124",
        confs("ABC124", p6=0.4),
        (),
        ["ABC123", "ABC125"],
        MatchKind.AMBIGUOUS,
        None,
        "several",
    ),
    # without per-character evidence every character counts as sure
    ("ABC124", (), (), ["ABC123"], MatchKind.NONE, None, "no cached"),
    ("ABC123", (), (), [], MatchKind.NONE, None, "no cached"),
]


@pytest.mark.parametrize(("read", "conf", "odds_", "cached", "kind", "plate", "why"), MATCH_TABLE)
def test_match_table(
    read: str,
    conf: tuple[float, ...],
    odds_: tuple[CharOdds, ...],
    cached: list[str],
    kind: MatchKind,
    plate: str | None,
    why: str,
) -> None:
    result = match(read, cached, conf, odds_, pairs=PAIRS)
    assert (result.kind, result.plate) == (kind, plate)
    assert result.reason.startswith(why)
    if kind is MatchKind.AMBIGUOUS:
        assert len(result.alternatives) >= 2


def test_candidates_are_ranked_by_likelihood() -> None:
    """Both explained: the alternatives list the likelier plate first."""
    read = "AXC12Y"
    conf = confs(read, p2=0.5, p6=0.6)
    evidence = odds(read, p2=("B", 0.4), p6=("Z", 0.1))
    result = match(read, ["ABC12Y", "AXC12Z"], conf, evidence, pairs=PAIRS)
    assert result.kind is MatchKind.AMBIGUOUS
    assert result.alternatives == ("ABC12Y", "AXC12Z")


def test_odds_that_do_not_describe_the_read_are_ignored() -> None:
    """Odds led by another character than the one read are not this read's: fail closed."""
    wrong = odds("ABC123", p6=("4", 0.3))
    assert match("ABC124", ["ABC123"], confs("ABC124", p6=0.95), wrong).kind is MatchKind.NONE


def test_fuzzy_support_is_the_agreeing_positions() -> None:
    result = match("ABC124", ["ABC123"], (0.9, 0.8, 1.0, 0.9, 0.9, 0.3))
    assert result.kind is MatchKind.FUZZY
    assert result.support == pytest.approx(0.9)


def test_merge_odds_averages_the_looks() -> None:
    merged = merge_odds([(("H", 0.6), ("W", 0.4)), (("W", 0.8), ("H", 0.2))])
    assert merged == (("W", pytest.approx(0.6)), ("H", pytest.approx(0.4)))
    assert merge_odds([]) == ()


def test_same_plate_counts_o_as_zero() -> None:
    assert same_plate("RKO99AN", "RK099AN")
    assert not same_plate("RKQ99AN", "RK099AN")


def test_shipped_lookalikes_follow_the_documented_rule() -> None:
    """The table's lookalike pairs are exactly the pairs its counts support (none hand-picked)."""
    table = json.loads(CONFUSIONS_FILE.read_text(encoding="utf-8"))
    assert derive(Counter(table["counts"])) == table["lookalikes"]
    assert lookalike_pairs() == {frozenset(p) for p in table["lookalikes"]}


_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PLATE = st.text(alphabet=_CHARS, min_size=2, max_size=8)


def _one_edit(plate: str, draw: st.DrawFn) -> str:
    """One substitution, insertion, deletion or adjacent transposition of ``plate``."""
    kind = draw(st.sampled_from(["sub", "ins", "del", "swap"]))
    i = draw(st.integers(0, len(plate) - 1))
    c = draw(st.sampled_from(_CHARS))
    if kind == "sub":
        return plate[:i] + c + plate[i + 1 :]
    if kind == "ins":
        return plate[:i] + c + plate[i:]
    if kind == "del":
        return plate[:i] + plate[i + 1 :]
    j = min(i + 1, len(plate) - 1)
    return plate[:i] + plate[j] + plate[i] + plate[j + 1 :] if j > i else plate


@st.composite
def _neighbours(draw: st.DrawFn) -> tuple[str, list[str]]:
    plate = draw(_PLATE)
    near = [_one_edit(plate, draw) for _ in range(draw(st.integers(1, 3)))]
    return plate, [n for n in near if n and not same_plate(n, plate)]


def _full_odds(read: str) -> tuple[CharOdds, ...]:
    return tuple(((ch, 1.0),) for ch in read)


@given(read=_PLATE, cached=st.lists(_PLATE, max_size=6))
def test_a_fully_confident_read_matches_only_itself(read: str, cached: list[str]) -> None:
    near = [*cached, read[:-1], read[1:], read[::-1], "X" + read, read + "X"]
    for evidence in ((), _full_odds(read)):
        result = match(read, near, (1.0,) * len(read), evidence)
        assert result.plate is None or same_plate(result.plate, read)
        assert result.kind in (MatchKind.EXACT, MatchKind.NONE)


@given(case=_neighbours(), sureness=st.lists(st.floats(UNSURE_BELOW, 1.0), min_size=8, max_size=8))
def test_a_confident_read_never_matches_a_neighbours_booking(
    case: tuple[str, list[str]], sureness: list[float]
) -> None:
    """The attack: my plate is one edit from a booked plate and reads at least UNSURE_BELOW
    at every character (no odds); it must not match."""
    plate, booked = case
    result = match(plate, booked, sureness[: len(plate)])
    assert result.kind is not MatchKind.FUZZY
    assert result.plate is None


_SURE_WITH_ODDS = 1 / (1 + ALTERNATIVE_RATIO) + 1e-9  # no alternative can reach the ratio


@given(
    case=_neighbours(),
    sureness=st.lists(st.floats(_SURE_WITH_ODDS, 1.0), min_size=8, max_size=8),
    alternatives=st.lists(st.sampled_from(_CHARS), min_size=8, max_size=8),
)
def test_a_confident_read_never_matches_a_neighbour_whatever_the_odds(
    case: tuple[str, list[str]], sureness: list[float], alternatives: list[str]
) -> None:
    """The same with the OCR's odds: each character read at 0.91 or more and the rest of its
    slot on any one character (the booked one included)."""
    plate, booked = case
    conf = sureness[: len(plate)]
    evidence = tuple(
        ((ch, p), (alt, 1.0 - p)) if alt != ch else ((ch, 1.0),)
        for ch, p, alt in zip(plate, conf, alternatives, strict=False)
    )
    result = match(plate, booked, conf, evidence)
    assert result.kind is not MatchKind.FUZZY
    assert result.plate is None


@given(case=_neighbours(), p=st.floats(0.0, 0.69))
def test_an_unsure_position_still_needs_a_unique_candidate(
    case: tuple[str, list[str]], p: float
) -> None:
    plate, booked = case
    conf = [p] * len(plate)
    result = match(plate, booked, conf)
    if result.kind is MatchKind.FUZZY:
        others = [b for b in set(booked) if b != result.plate]
        assert all(explain(plate, b, conf) is None for b in others)


@pytest.mark.parametrize(
    ("a", "b"), [("ABC123", "ABC12"), ("ABC123", "XABC123"), ("ABC123", "ABD123"), ("A", "")]
)
def test_one_edit_pairs_share_an_index_key(a: str, b: str) -> None:
    assert is_one_edit(a, b)
    assert index_keys(a) & query_keys(b)


def test_lookalike_pairs_share_an_index_key() -> None:
    assert index_keys("ABC120") & query_keys("A8C12O")  # same lookalike key


@pytest.mark.parametrize(("a", "b"), [("FZB9581", "FBZ9581"), ("FK4W3L", "K4W3L")])
def test_transpositions_and_dropped_edges_share_an_index_key(a: str, b: str) -> None:
    assert index_keys(a) & query_keys(b)
