"""Recognition on the shared OpenALPR set: exact reads, detection, latency, vs plain fast-alpr.

Per region (us, eu), on every labelled photo:

- exact read (ours): any plate our :class:`Recognizer` returns equals the label, O≡0 (the lane
  considers every plate in a frame); top-1: our best-confidence plate equals it.
- plain fast-alpr: the same models called directly through ``ALPR.predict``, its first (highest
  detection confidence) result, O≡0.
- detection: one of our returned boxes overlaps the labelled box with IoU ≥ 0.5 (0.3 gives the same
  numbers on this dataset; 0.7 loses ~7 points because labels are drawn loosely).
- recognition ms: ``Recognizer.read`` on a decoded frame, p50/p95 (one warm-up frame excluded).
- reads lost to filters: photos where plain fast-alpr had the label among its results but our
  filters (min length, confidence, format) dropped it — must stay 0 with the defaults.

Also the ranking quality (AUC) of three ways to turn per-character confidences into one number, on
reads of the labelled plate, which is how the recognizer's "mean" was chosen.

Run: ``python -m bench.recognition`` (or ``make bench``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.dataset import REGIONS, Sample, iou, load_region, same_plate
from gate_agent.recognition import Recognizer, build_alpr, load_image, models_dir_from_env

__all__ = ["run"]

IOU_THRESHOLD = 0.5
TARGETS = {"us": 0.84, "eu": 0.99}
_REPO = Path(__file__).resolve().parent.parent


@dataclass
class RegionScore:
    images: int = 0
    ours_any: int = 0
    ours_top1: int = 0
    plain_top1: int = 0
    detected: int = 0
    lost_to_filters: int = 0
    ms: list[float] = field(default_factory=list)
    plain_ms: list[float] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def auc(scored: Sequence[tuple[float, bool]]) -> float:
    """Probability that a right read scores above a wrong one (ties count half)."""
    right = [s for s, ok in scored if ok]
    wrong = [s for s, ok in scored if not ok]
    if not right or not wrong:
        return float("nan")
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def _plain_text(result: Any) -> str:
    return result.ocr.text if result.ocr is not None else ""


def _score(
    sample: Sample, recognizer: Recognizer, alpr: Any, score: RegionScore, ranked: list[Any]
) -> None:
    image = load_image(sample.image)
    started = time.perf_counter()
    reads = recognizer.read(image)
    score.ms.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    plain = alpr.predict(image)
    score.plain_ms.append((time.perf_counter() - started) * 1000)

    score.images += 1
    ours_any = any(same_plate(r.text, sample.plate) for r in reads)
    score.ours_any += ours_any
    score.ours_top1 += bool(reads) and same_plate(reads[0].text, sample.plate)
    score.plain_top1 += bool(plain) and same_plate(_plain_text(plain[0]), sample.plate)
    score.detected += any(iou(r.box, sample.box) >= IOU_THRESHOLD for r in reads)
    plain_any = any(same_plate(_plain_text(p), sample.plate) for p in plain)
    score.lost_to_filters += plain_any and not ours_any
    ranked.extend(
        (r, same_plate(r.text, sample.plate))
        for r in reads
        if iou(r.box, sample.box) >= IOU_THRESHOLD
    )


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}% ({part}/{whole})" if whole else "n/a"


def _region_lines(region: str, s: RegionScore) -> list[str]:
    target = TARGETS[region]
    ok_target = s.ours_any >= target * s.images
    ok_plain = min(s.ours_any, s.ours_top1) >= s.plain_top1
    return [
        f"{region}: exact read (ours, any plate, O≡0) {_pct(s.ours_any, s.images)}"
        f"  target ≥ {target:.0%}: {'PASS' if ok_target else 'FAIL'}",
        f"{region}: exact read (ours, top-1)          {_pct(s.ours_top1, s.images)}",
        f"{region}: exact read (plain fast-alpr top)  {_pct(s.plain_top1, s.images)}"
        f"  ours (any and top-1) ≥ plain: {'PASS' if ok_plain else 'FAIL'}",
        f"{region}: detection (IoU ≥ {IOU_THRESHOLD})           {_pct(s.detected, s.images)}",
        f"{region}: recognition ms p50 {percentile(s.ms, 50):.1f}  p95 {percentile(s.ms, 95):.1f}"
        f"   (plain predict p50 {percentile(s.plain_ms, 50):.1f}"
        f"  p95 {percentile(s.plain_ms, 95):.1f})",
        f"{region}: reads lost to our filters: {s.lost_to_filters}",
    ]


def _confidence_lines(ranked: list[Any]) -> list[str]:
    ways = {
        "mean (used)": lambda c: sum(c) / len(c),
        "min": min,
        "product": math.prod,
    }
    parts = [
        f"{name} {auc([(way(r.char_confidences), ok) for r, ok in ranked]):.3f}"
        for name, way in ways.items()
    ]
    wrong = sum(not ok for _, ok in ranked)
    return [
        f"confidence AUC right-vs-wrong on {len(ranked)} reads ({wrong} wrong): " + ", ".join(parts)
    ]


def run() -> list[str]:
    models_dir = models_dir_from_env() or _REPO.parent / "shared" / "models"
    alpr = build_alpr(models_dir, threads=2)
    recognizer = Recognizer(alpr)
    lines = [
        f"models {models_dir}; filters: min length {recognizer.min_plate_length}, "
        f"min confidence {recognizer.min_confidence}, threads 2"
    ]
    ranked: list[Any] = []
    for region in REGIONS:
        samples = load_region(region)
        recognizer.read(load_image(samples[0].image))  # warm-up, not timed
        score = RegionScore()
        for sample in samples:
            _score(sample, recognizer, alpr, score, ranked)
        lines += _region_lines(region, score)
    return lines + _confidence_lines(ranked)


if __name__ == "__main__":
    for line in run():
        print(line)
