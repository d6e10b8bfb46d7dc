"""The recognizer's confusions on the dev photos, and the lookalike pairs derived from them.

Runs the shipped :class:`~gate_agent.recognition.Recognizer` on every labelled photo, takes the
detection whose box overlaps the label best (else the top read), reads that box again with the
OCR alone in each of :data:`CROPS` (the detector's box, and the box widened as the second look
and a little more: three looks at each plate, so that a confusion the model makes under a
slightly different framing counts too), aligns each read with the truth and counts what went
wrong:

- substitutions ``T>R`` (truth character T read as R) in reads of the right length that differ in
  one or two positions (more is a bad read, not a confusion of characters);
- adjacent transpositions, and a dropped first or last character.

In the EU set O and 0 are one character (the labels do not tell them apart).

Lookalike rule: an unordered pair is a lookalike when the recognizer confused it (either
direction) in at least :data:`MIN_COUNT` different dev photos. A pair seen once is weak evidence
(one blurry photo); two independent photos are the least that says "this model mixes these up".
The table is small, so it is printed in full by ``make bench`` for review.

Run ``python -m bench.confusions --write`` to regenerate ``gate_agent/confusions.json``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.dataset import Sample, iou, load_samples
from gate_agent.domain import PlateRead
from gate_agent.plates import CONFUSIONS_FILE, differences, is_transposition
from gate_agent.recognition import (
    READ_MARGIN,
    SECOND_LOOK_MARGIN,
    Recognizer,
    load_image,
    models_dir_from_env,
)

__all__ = ["MIN_COUNT", "best_read", "derive", "table_lines", "tally"]

MIN_COUNT = 2
CROPS: tuple[tuple[float, float], ...] = ((0.0, 0.0), READ_MARGIN, SECOND_LOOK_MARGIN)
_REPO = Path(__file__).resolve().parent.parent


def _scored(region: str, plate: str) -> str:
    return plate.replace("O", "0") if region == "eu" else plate


def best_read(sample: Sample, reads: Sequence[PlateRead]) -> PlateRead | None:
    """The read of the labelled plate: best box overlap, else the top read (None when none)."""
    if not reads:
        return None
    best = max(reads, key=lambda r: iou(r.box, sample.box))
    return best if iou(best.box, sample.box) > 0 else reads[0]


def _edit(truth: str, read: str) -> list[str]:
    if len(truth) == len(read):
        diffs = differences(truth, read)
        if is_transposition(truth, read, diffs):
            return ["transposition"]
        if 1 <= len(diffs) <= 2:
            return [f"{truth[i]}>{read[i]}" for i in diffs]
        return ["bad read"] if diffs else []
    if truth[1:] == read:
        return ["dropped first"]
    if truth[:-1] == read:
        return ["dropped last"]
    return ["bad read" if read else "no read"]


def tally(photos: Iterable[tuple[str, str, Sequence[str]]]) -> Counter[str]:
    """In how many photos each outcome occurred, over (region, truth, reads of its looks).

    A confusion made in two looks at one photo counts once: the rule asks for separate photos.
    """
    counts: Counter[str] = Counter()
    for region, truth, reads in photos:
        kinds: set[str] = set()
        for read in reads:
            kinds.update(_edit(_scored(region, truth), _scored(region, read)) or ["right"])
        counts.update(kinds)
    return counts


def derive(counts: Counter[str], min_count: int = MIN_COUNT) -> list[list[str]]:
    """Unordered substitution pairs confused at least ``min_count`` times, sorted."""
    pairs: Counter[tuple[str, str]] = Counter()
    for kind, n in counts.items():
        if len(kind) == 3 and kind[1] == ">":
            pairs[tuple(sorted((kind[0], kind[2])))] += n  # type: ignore[index]
    return sorted([list(p) for p, n in pairs.items() if n >= min_count])


def table_lines(counts: Counter[str], lookalikes: Sequence[Sequence[str]]) -> list[str]:
    subs = sorted(((k, n) for k, n in counts.items() if ">" in k), key=lambda kn: (-kn[1], kn[0]))
    other = [
        f"{k} {counts[k]}"
        for k in ("right", "transposition", "dropped first", "dropped last", "bad read", "no read")
        if counts[k]
    ]
    return [
        "recognizer confusions on the dev photos (truth>read: photos): "
        + ", ".join(f"{k} {n}" for k, n in subs),
        "  other outcomes: " + ", ".join(other),
        f"  lookalike pairs (confused in ≥ {MIN_COUNT} photos): "
        + (", ".join("/".join(p) for p in lookalikes) or "none"),
    ]


def collect(
    recognizer: Recognizer, samples: Sequence[Sample]
) -> list[tuple[str, str, tuple[str, ...]]]:
    """(region, truth, the read of each crop) for each photo."""
    found = []
    for sample in samples:
        image = load_image(sample.image)
        best = best_read(sample, recognizer.read(image))
        looks = [None if best is None else recognizer.read_box(image, best.box, m) for m in CROPS]
        found.append(
            (sample.region, sample.plate, tuple("" if r is None else r.text for r in looks))
        )
    return found


def main(argv: list[str]) -> int:
    models_dir = models_dir_from_env() or _REPO.parent / "shared" / "models"
    recognizer = Recognizer.from_models(models_dir, threads=2)
    counts = tally(collect(recognizer, load_samples()))
    lookalikes = derive(counts)
    for line in table_lines(counts, lookalikes):
        print(line)
    if "--write" in argv:
        table = {
            "source": "bench/confusions.py on the OpenALPR end-to-end dev photos (us, eu)",
            "rule": f"unordered pairs confused in at least {MIN_COUNT} photos (any of 3 crops)",
            "counts": dict(sorted(counts.items())),
            "lookalikes": lookalikes,
        }
        CONFUSIONS_FILE.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {CONFUSIONS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
