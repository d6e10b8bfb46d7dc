"""Ground truth of the OpenALPR end-to-end benchmark, shared by the tests and the benchmarks.

Layout: ``$PARKGATE_DATASETS_DIR/{us,eu}/NAME.txt`` next to ``NAME.jpg``; each text file holds
lines ``FILE x y w h PLATE`` separated by tabs or spaces (x, y = top-left corner of the plate).
``PARKGATE_DATASETS_DIR`` points at the ``openalpr-endtoend`` folder; without it the folder is
``../shared/datasets/openalpr-endtoend`` next to the repository.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gate_agent.plates import normalise

__all__ = [
    "DATASETS_DIR_ENV",
    "REGIONS",
    "Sample",
    "dataset_dir",
    "iou",
    "load_region",
    "load_samples",
    "same_plate",
    "score_key",
]

DATASETS_DIR_ENV = "PARKGATE_DATASETS_DIR"
REGIONS = ("us", "eu")
_REPO = Path(__file__).resolve().parent.parent
Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Sample:
    """One photo and its labelled plate."""

    region: str
    image: Path
    plate: str  # normalised
    box: Box  # x1, y1, x2, y2


def dataset_dir() -> Path:
    """The ``openalpr-endtoend`` folder (``$PARKGATE_DATASETS_DIR`` or the shared default)."""
    value = os.environ.get(DATASETS_DIR_ENV, "").strip()
    if value:
        return Path(value)
    return _REPO.parent / "shared" / "datasets" / "openalpr-endtoend"


def _parse_line(region: str, folder: Path, line: str) -> Sample | None:
    fields = line.split()
    if len(fields) < 6:
        return None
    x, y, w, h = (int(v) for v in fields[1:5])
    return Sample(
        region=region,
        image=folder / fields[0],
        plate=normalise("".join(fields[5:])),
        box=(x, y, x + w, y + h),
    )


def load_region(region: str, root: Path | None = None) -> list[Sample]:
    """All labelled samples of one region, sorted by image name."""
    folder = (root or dataset_dir()) / region
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} missing: set {DATASETS_DIR_ENV}")
    samples: list[Sample] = []
    for label in sorted(folder.glob("*.txt")):
        for line in label.read_text(encoding="utf-8").splitlines():
            sample = _parse_line(region, folder, line)
            if sample is not None:
                samples.append(sample)
    return samples


def load_samples(root: Path | None = None, regions: Iterable[str] = REGIONS) -> list[Sample]:
    """Samples of several regions (default: us then eu)."""
    return [s for region in regions for s in load_region(region, root)]


def score_key(plate: str) -> str:
    """The form in which reads are scored: normalised, with the letter O counted as zero."""
    return normalise(plate).replace("O", "0")


def same_plate(read: str, truth: str) -> bool:
    """Exact read with O≡0 (applied to both regions)."""
    return score_key(read) == score_key(truth)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes (0.0 when they do not overlap)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
