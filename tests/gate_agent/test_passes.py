"""Multi-frame voting and the life of a pass (pure logic, time passed in)."""

from __future__ import annotations

import itertools
import re

import pytest

from gate_agent.domain import PlateRead
from gate_agent.passes import Pass, PassTracker, VotedPlate, edit_distance, new_visit_id, vote


def read(text: str, confidence: float = 0.9, chars: tuple[float, ...] = ()) -> PlateRead:
    return PlateRead(text, confidence, (0, 0, 10, 5), char_confidences=chars)


def tracker(**kwargs: float) -> PassTracker:
    counter = itertools.count(1)
    return PassTracker(id_factory=lambda: f"visit-{next(counter)}", **kwargs)


def feed(t: PassTracker, frames: list[list[PlateRead]], start: float = 0.0) -> Pass | None:
    result = None
    for i, frame in enumerate(frames):
        result = t.observe(frame, start + 0.1 * i)
    return result


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        pytest.param([[read("ABC123", 0.9)]], "ABC123", id="single-frame"),
        pytest.param(
            [[read("ABC123", 0.6)], [read("A8C123", 0.9)], [read("ABC123", 0.95)]],
            "ABC123",
            id="noisy-converges",
        ),
        pytest.param(
            [
                [read("XYZ789", 0.7, (0.9, 0.9, 0.3, 0.9, 0.9, 0.9))],
                [read("XY2789", 0.9, (0.9, 0.9, 0.95, 0.9, 0.9, 0.9))],
                [read("XYZ789", 0.7, (0.9, 0.9, 0.3, 0.9, 0.9, 0.9))],
            ],
            "XY2789",  # weighted by per-char confidence: one sure read beats two unsure ones
            id="per-char-weights",
        ),
        pytest.param(
            [[read("ABC1234", 0.9)], [read("ABC123", 0.5)], [read("ABC1234", 0.8)]],
            "ABC1234",
            id="modal-length-wins",
        ),
        pytest.param(
            [[read("KLM456", 0.7)], [read("KLN456", 0.9)], [read("KLN456", 0.8)]],
            "KLN456",
            id="majority-by-weight",
        ),
    ],
)
def test_voting_table(frames: list[list[PlateRead]], expected: str) -> None:
    result = feed(tracker(), frames)
    assert result is not None
    assert result.candidates[0].text == expected


def test_single_read_keeps_its_confidence() -> None:
    assert vote([read("ABC123", 0.8)]) == [
        VotedPlate("ABC123", pytest.approx(0.8), 1, pytest.approx((0.8,) * 6))
    ]


def test_agreement_raises_and_disagreement_lowers_confidence() -> None:
    single = vote([read("ABC123", 0.9)])[0]
    agreed = vote([read("ABC123", 0.9), read("ABC123", 0.9)])[0]
    split = vote([read("ABC123", 0.9), read("ABD123", 0.9)])[0]
    assert single.confidence == pytest.approx(0.9)  # one read: the recognizer's confidence
    assert agreed.confidence == pytest.approx(0.99)  # 1 - (1 - 0.9)^2 at every position
    assert split.confidence < agreed.confidence
    assert split.confidence <= single.confidence + 1e-9


def test_a_weak_early_read_does_not_make_a_clear_read_less_convincing() -> None:
    clear = vote([read("ABC123", 0.95)])[0]
    after_weak = vote([read("A8C123", 0.70), read("ABC123", 0.95)])[0]
    assert after_weak.text == "ABC123"
    assert after_weak.confidence >= 0.85  # still opens at the default min_confidence 0.80
    assert after_weak.confidence < clear.confidence + 0.05


def test_other_lengths_are_lesser_candidates() -> None:
    voted = vote([read("ABC1234", 0.9), read("ABC1234", 0.9), read("ABC123", 0.95)])
    assert [v.text for v in voted] == ["ABC1234", "ABC123"]
    assert voted[0].reads == 2 and voted[1].reads == 1
    assert voted[1].confidence == pytest.approx(0.95 / 3)


def test_two_plates_in_the_same_frames_stay_separate() -> None:
    frames = [[read("ABC123", 0.9), read("XYZ789", 0.8)] for _ in range(3)]
    result = feed(tracker(), frames)
    assert result is not None
    assert [c.text for c in result.candidates] == ["ABC123", "XYZ789"]
    assert all(c.reads == 3 for c in result.candidates)


def test_near_plates_in_one_frame_are_not_merged() -> None:
    result = tracker().observe([read("ABC123"), read("ABC124")], 0.0)
    assert result is not None
    assert sorted(c.text for c in result.candidates) == ["ABC123", "ABC124"]


def test_first_read_starts_one_pass_with_one_visit_id() -> None:
    t = tracker()
    assert t.observe([], 0.0) is None
    first = t.observe([read("ABC123")], 1.0)
    second = t.observe([read("ABC123")], 1.1)
    assert first is second is not None
    assert first.visit_id == "visit-1"
    assert first.started_at == 1.0
    assert not first.decided


def test_budget_expiry() -> None:
    t = tracker(budget_s=1.5)
    p = t.observe([read("ABC123", 0.4)], 10.0)
    assert p is not None
    assert not t.budget_exhausted(11.4) and not p.budget_exhausted(11.4)
    assert t.budget_exhausted(11.5) and p.budget_exhausted(11.5)
    t.decide(p.visit_id)
    assert p.decided
    assert not t.budget_exhausted(12.0)  # decided passes have no budget left to run out


def test_decided_pass_absorbs_its_car_then_ends() -> None:
    t = tracker(gap_s=3.0)
    p = t.observe([read("ABC123")], 0.0)
    assert p is not None
    t.decide(p.visit_id)
    assert t.observe([read("A8C123")], 2.0) is p  # same car, still in view
    assert t.observe([read("ABC123")], 4.5) is p  # 2.5 s later: still the same pass
    assert t.observe([], 7.4) is p
    assert t.observe([], 7.6) is None  # no read of it for 3 s: the pass ended


def test_car_leaves_and_returns_gets_a_new_visit_id() -> None:
    t = tracker()
    p = t.observe([read("ABC123")], 0.0)
    assert p is not None
    t.decide(p.visit_id)
    assert t.observe([], 10.0) is None
    back = t.observe([read("ABC123")], 60.0)
    assert back is not None and back.visit_id == "visit-2" and not back.decided


def test_different_plate_while_decided_pass_lingers_starts_new_pass() -> None:
    t = tracker()
    p = t.observe([read("ABC123")], 0.0)
    assert p is not None
    t.decide(p.visit_id)
    q = t.observe([read("ABC123"), read("XYZ789")], 1.0)
    assert q is not None and q is not p and q.visit_id == "visit-2"
    assert [c.text for c in q.candidates] == ["XYZ789"]  # the first car's read stays with p
    assert t.observe([read("ABC123")], 1.5) is q
    assert [c.text for c in q.candidates] == ["XYZ789"]


def test_presence_start_without_reads() -> None:
    t = tracker(budget_s=1.5)
    p = t.start(5.0)
    assert p.visit_id == "visit-1" and p.candidates == ()
    assert t.start(5.2) is p  # a second trigger while undecided: same pass
    assert t.observe([read("ABC123")], 5.5) is p
    assert p.started_at == 5.0
    assert t.budget_exhausted(6.5)


def test_presence_after_decision_starts_a_new_pass() -> None:
    t = tracker()
    p = t.start(0.0)
    t.decide(p.visit_id)
    assert t.start(1.0).visit_id == "visit-2"


def test_decide_unknown_visit_raises() -> None:
    with pytest.raises(KeyError):
        tracker().decide("nope")


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("ABC", "ABC", 0), ("ABC", "ABD", 1), ("ABC", "AB", 1), ("ABC", "XYZ", 3)],
)
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance


def test_visit_ids_are_sortable_ulids() -> None:
    ids = [new_visit_id() for _ in range(50)]
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    assert len(set(ids)) == 50
    assert ids[0][:10] <= ids[-1][:10]  # the time prefix never goes backwards


def test_the_vote_keeps_per_character_evidence() -> None:
    """The matcher weighs each position: the vote hands on its confidence and the OCR's odds."""
    h = PlateRead("AH1", 0.8, (0, 0, 10, 5), (0.9, 0.6, 0.9), char_odds=_odds("AH1", "W", 0.4))
    also_h = PlateRead("AH1", 0.8, (0, 0, 10, 5), (0.9, 0.8, 0.9), char_odds=_odds("AH1", "W", 0.2))
    [voted] = vote([h, also_h])
    assert voted.text == "AH1"
    assert voted.char_confidences[1] == pytest.approx(1 - 0.4 * 0.2)  # two reads agree on H
    assert voted.char_odds[1] == (("H", pytest.approx(0.7)), ("W", pytest.approx(0.3)))


def test_the_vote_drops_odds_it_cannot_align() -> None:
    with_odds = PlateRead(
        "AH1", 0.8, (0, 0, 10, 5), (0.9, 0.6, 0.9), char_odds=_odds("AH1", "W", 0.4)
    )
    [voted] = vote([with_odds, read("AH1", 0.8)])
    assert voted.char_odds == ()  # one read without odds: the matcher falls back to confidences
    assert len(voted.char_confidences) == 3


def _odds(text: str, alt: str, p: float) -> tuple[tuple[tuple[str, float], ...], ...]:
    """Sure characters, but the second shares its slot with ``alt`` at ``p``."""
    return tuple(((ch, 1.0 - p), (alt, p)) if i == 1 else ((ch, 1.0),) for i, ch in enumerate(text))
