from __future__ import annotations

import pytest

from gate_agent.domain import MatchKind
from gate_agent.plates import index_keys, is_one_edit, lookalike_key, match, normalise, query_keys


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ab-12 c", "AB12C"), (" KA 01 AB 1234 ", "KA01AB1234"), ("é·x_9", "X9"), ("", "")],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_lookalike_groups_collapse() -> None:
    assert lookalike_key("ODQ0 1I 2Z 5S 8B 6G".replace(" ", "")) == "0000112255886" + "6"


@pytest.mark.parametrize(
    ("read", "cached", "kind", "plate"),
    [
        ("ABC123", ["ABC123", "ABC128"], MatchKind.EXACT, "ABC123"),
        ("A8C123", ["ABC123"], MatchKind.FUZZY, "ABC123"),  # lookalike 8/B
        ("ABC12", ["ABC123"], MatchKind.FUZZY, "ABC123"),  # one deletion
        ("ABC1234", ["ABC123"], MatchKind.FUZZY, "ABC123"),  # one insertion
        ("ABC124", ["ABC123"], MatchKind.FUZZY, "ABC123"),  # one plain substitution
        ("ABC124", ["ABC123", "ABC125"], MatchKind.AMBIGUOUS, None),
        # a lookalike substitution outranks a plain edit
        ("ABC12O", ["ABC120", "ABC12X"], MatchKind.FUZZY, "ABC120"),
        ("A8C12O", ["ABC120"], MatchKind.NONE, None),  # two substitutions is too far
        ("XYZ999", ["ABC123"], MatchKind.NONE, None),
        ("ABC123", [], MatchKind.NONE, None),
    ],
)
def test_match_table(read: str, cached: list[str], kind: MatchKind, plate: str | None) -> None:
    result = match(read, cached)
    assert result.kind is kind
    assert result.plate == plate
    if kind is MatchKind.AMBIGUOUS:
        assert len(result.alternatives) >= 2


@pytest.mark.parametrize(
    ("a", "b"), [("ABC123", "ABC12"), ("ABC123", "XABC123"), ("ABC123", "ABD123"), ("A", "")]
)
def test_one_edit_pairs_share_an_index_key(a: str, b: str) -> None:
    assert is_one_edit(a, b)
    assert index_keys(a) & query_keys(b)


def test_lookalike_pairs_share_an_index_key() -> None:
    assert index_keys("ABC120") & query_keys("A8C12O")  # same lookalike key
