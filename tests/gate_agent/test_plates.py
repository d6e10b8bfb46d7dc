from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.confusions import derive
from gate_agent.domain import MatchKind
from gate_agent.plates import (
    CONFUSIONS_FILE,
    LOOKALIKE_BELOW,
    explain,
    index_keys,
    is_one_edit,
    lookalike_key,
    lookalike_pairs,
    match,
    normalise,
    query_keys,
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


@pytest.mark.parametrize(
    ("read", "conf", "cached", "kind", "plate", "why"),
    [
        ("ABC123", confs("ABC123"), ["ABC123", "ABC128"], MatchKind.EXACT, "ABC123", "exact"),
        # a substitution at a position the read is unsure of
        ("ABC124", confs("ABC124", p6=0.4), ["ABC123"], MatchKind.FUZZY, "ABC123", "unsure 6:4>3"),
        # ... but a sure read of a neighbour is a different car
        ("ABC124", confs("ABC124"), ["ABC123"], MatchKind.NONE, None, "no cached"),
        ("ABC124", confs("ABC124", p6=0.9), ["ABC123"], MatchKind.NONE, None, "no cached"),
        # a measured lookalike (8/B) may be surer, not sure
        ("A8C123", confs("A8C123", p2=0.9), ["ABC123"], MatchKind.FUZZY, "ABC123", "lookalike"),
        ("A8C123", confs("A8C123", p2=0.97), ["ABC123"], MatchKind.NONE, None, "no cached"),
        ("A8C123", confs("A8C123"), ["ABC123"], MatchKind.NONE, None, "no cached"),
        # 5/6 is not a measured lookalike: needs the plain "unsure" level
        ("ABC126", confs("ABC126", p6=0.9), ["ABC125"], MatchKind.NONE, None, "no cached"),
        # adjacent transposition: one of the two unsure
        (
            "FBZ9581",
            confs("FBZ9581", p3=0.5),
            ["FZB9581"],
            MatchKind.FUZZY,
            "FZB9581",
            "transposed 2-3",
        ),
        ("FBZ9581", confs("FBZ9581"), ["FZB9581"], MatchKind.NONE, None, "no cached"),
        # a dropped first or last character, with an unsure edge
        ("K4W3L", confs("K4W3L", p1=0.8), ["FK4W3L"], MatchKind.FUZZY, "FK4W3L", "dropped first F"),
        ("FK4W3", confs("FK4W3", p5=0.8), ["FK4W3L"], MatchKind.FUZZY, "FK4W3L", "dropped last L"),
        ("K4W3L", confs("K4W3L"), ["FK4W3L"], MatchKind.NONE, None, "no cached"),
        ("FKW3L", confs("FKW3L", p2=0.3, p3=0.3), ["FK4W3L"], MatchKind.NONE, None, "no cached"),
        # an extra character or two substitutions are never explained
        ("ABC1234", confs("ABC1234", p7=0.2), ["ABC123"], MatchKind.NONE, None, "no cached"),
        ("A8C12O", confs("A8C12O", p2=0.3, p6=0.3), ["ABC120"], MatchKind.NONE, None, "no cached"),
        # two plates explained: the lane must not guess
        (
            "ABC124",
            confs("ABC124", p6=0.4),
            ["ABC123", "ABC125"],
            MatchKind.AMBIGUOUS,
            None,
            "several",
        ),
        # without per-character evidence every character counts as sure
        ("ABC124", (), ["ABC123"], MatchKind.NONE, None, "no cached"),
        ("ABC123", (), [], MatchKind.NONE, None, "no cached"),
    ],
)
def test_match_table(
    read: str,
    conf: tuple[float, ...],
    cached: list[str],
    kind: MatchKind,
    plate: str | None,
    why: str,
) -> None:
    result = match(read, cached, conf)
    assert (result.kind, result.plate) == (kind, plate)
    assert result.reason.startswith(why)
    if kind is MatchKind.AMBIGUOUS:
        assert len(result.alternatives) >= 2


def test_candidates_are_ranked_by_likelihood() -> None:
    """Both explained: the alternatives list the likelier plate first (a lookalike at 0.5)."""
    read = "A8C12X"
    result = match(read, ["ABC12X", "A8C12Y"], confs(read, p2=0.5, p6=0.6))
    assert result.kind is MatchKind.AMBIGUOUS
    assert result.alternatives == ("ABC12X", "A8C12Y")
    assert explain(read, "ABC12X", confs(read, p2=0.5)) is not None


def test_fuzzy_support_is_the_agreeing_positions() -> None:
    result = match("ABC124", ["ABC123"], (0.9, 0.8, 1.0, 0.9, 0.9, 0.3))
    assert result.kind is MatchKind.FUZZY
    assert result.support == pytest.approx(0.9)


def test_shipped_lookalikes_follow_the_documented_rule() -> None:
    """The table's lookalike pairs are exactly the pairs its counts support (none hand-picked)."""
    table = json.loads(CONFUSIONS_FILE.read_text(encoding="utf-8"))
    assert derive(Counter(table["counts"])) == table["lookalikes"]
    assert lookalike_pairs() == {frozenset(p) for p in table["lookalikes"]}


_PLATE = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=8)


def _one_edit(plate: str, draw: st.DrawFn) -> str:
    """One substitution, insertion, deletion or adjacent transposition of ``plate``."""
    chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    kind = draw(st.sampled_from(["sub", "ins", "del", "swap"]))
    i = draw(st.integers(0, len(plate) - 1))
    c = draw(st.sampled_from(chars))
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
    return plate, [n for n in near if n and n != plate]


@given(read=_PLATE, cached=st.lists(_PLATE, max_size=6))
def test_a_fully_confident_read_matches_only_itself(read: str, cached: list[str]) -> None:
    result = match(read, [*cached, *(read[:-1], read[1:], read[::-1])], (1.0,) * len(read))
    assert result.plate in (None, read)
    assert result.kind in (MatchKind.EXACT, MatchKind.NONE)


@given(
    case=_neighbours(),
    sureness=st.lists(st.floats(LOOKALIKE_BELOW, 1.0), min_size=8, max_size=8),
)
def test_a_confident_read_never_matches_a_neighbours_booking(
    case: tuple[str, list[str]], sureness: list[float]
) -> None:
    """The attack: my plate is one edit from a booked plate and reads sure; it must not match."""
    plate, booked = case
    result = match(plate, booked, sureness[: len(plate)])
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
