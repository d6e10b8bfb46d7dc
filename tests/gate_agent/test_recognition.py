"""The recognizer: real models on real photos, and fake-ALPR unit tests for the post-processing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.dataset import Sample, load_region, same_plate
from gate_agent.domain import PlateRead
from gate_agent.recognition import (
    ModelsNotFound,
    Recognizer,
    SlotOcrResult,
    UnreadableImage,
    hub_detector_name,
    hub_ocr_name,
    models_dir_from_env,
    vote_looks,
)

# --- fake fast-alpr results -------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Detection:
    confidence: float
    bounding_box: Box


@dataclass(frozen=True)
class Ocr:
    text: str
    confidence: float | list[float]


@dataclass(frozen=True)
class Result:
    detection: Detection
    ocr: Ocr | None


def result(text: str, chars: Sequence[float] | float, det: float = 0.8, pad: int = 10) -> Result:
    """An ALPRResult as fast-alpr makes it: per-slot confidences padded to ``pad`` slots."""
    if isinstance(chars, float):
        return Result(Detection(det, Box(1, 2, 30, 12)), Ocr(text, chars))
    slots = list(chars) + [0.999] * (pad - len(chars))
    return Result(Detection(det, Box(1, 2, 30, 12)), Ocr(text, slots))


class FakeAlpr:
    def __init__(self, results: list[Result]) -> None:
        self.results = results
        self.frames = 0

    def predict(self, frame: np.ndarray) -> list[Result]:
        self.frames += 1
        return self.results


FRAME = np.zeros((40, 60, 3), dtype=np.uint8)


def fake_read(results: list[Result], **filters: Any) -> list[PlateRead]:
    return Recognizer(FakeAlpr(results), **filters).read(FRAME)


def test_pad_slots_are_not_averaged_in() -> None:
    [plate] = fake_read([result("AB12C", [0.5, 0.6, 0.7, 0.8, 0.9])])
    assert plate.text == "AB12C"
    assert plate.char_confidences == pytest.approx((0.5, 0.6, 0.7, 0.8, 0.9))
    assert plate.confidence == pytest.approx(0.7)  # not pulled up by the five 0.999 pad slots


def test_punctuation_and_inner_pad_dropped_with_their_confidences() -> None:
    [plate] = fake_read([result("ab-1_23", [0.9, 0.9, 0.1, 0.9, 0.2, 0.6, 0.6])])
    assert plate.text == "AB123"
    assert plate.char_confidences == pytest.approx((0.9, 0.9, 0.9, 0.6, 0.6))


def test_scalar_confidence_is_kept() -> None:
    [plate] = fake_read([result("ABC123", 0.75)])
    assert plate.confidence == pytest.approx(0.75) and plate.char_confidences == ()


def test_every_plate_returned_best_first_with_box_and_detection() -> None:
    reads = fake_read([result("LOW123", [0.5] * 6, det=0.9), result("HIGH12", [0.95] * 6, det=0.5)])
    assert [r.text for r in reads] == ["HIGH12", "LOW123"]
    assert reads[0].detection_confidence == pytest.approx(0.5)
    assert reads[0].box == (1, 2, 30, 12)
    assert all(isinstance(v, int) for v in reads[0].box)


def test_near_equal_confidences_go_to_the_surer_detection() -> None:
    reads = fake_read(
        [result("RK619", [0.99999] * 5, det=0.87), result("RK735AS", [0.99998] * 7, det=0.91)]
    )
    assert [r.text for r in reads] == ["RK735AS", "RK619"]
    assert reads[0].confidence == reads[1].confidence == 1.0


def test_box_is_clipped_to_the_frame() -> None:
    wide = Result(Detection(0.9, Box(-5, -1, 99, 50)), Ocr("ABC123", [0.9] * 6))
    [plate] = fake_read([wide])
    assert plate.box == (0, 0, 60, 40)


@pytest.mark.parametrize(
    ("texts", "filters", "kept"),
    [
        (["", "AB1", "AB12", "ABC123"], {}, ["AB12", "ABC123"]),
        (["AB12", "ABC123"], {"min_plate_length": 6}, ["ABC123"]),
        (["AB12", "ABC123"], {"min_plate_length": 1}, ["AB12", "ABC123"]),
        (["AB123CD", "ABC123", "1AB234"], {"plate_format": r"[A-Z]{2}\d{3}[A-Z]{2}"}, ["AB123CD"]),
        (["ab-123-cd"], {"plate_format": r"[A-Z]{2}\d{3}[A-Z]{2}"}, ["AB123CD"]),
        (["AB123CDX"], {"plate_format": r"[A-Z]{2}\d{3}[A-Z]{2}"}, []),  # full match only
    ],
)
def test_filters(texts: list[str], filters: dict[str, Any], kept: list[str]) -> None:
    reads = fake_read([result(t, [0.9] * len(t)) for t in texts], **filters)
    assert sorted(r.text for r in reads) == kept


def test_min_confidence_filter_and_missing_ocr() -> None:
    results = [result("ABC123", [0.3] * 6), result("XYZ789", [0.9] * 6)]
    results.append(Result(Detection(0.9, Box(0, 0, 5, 5)), None))
    assert [r.text for r in fake_read(results, min_confidence=0.5)] == ["XYZ789"]


def test_bad_filters_are_rejected() -> None:
    with pytest.raises(ValueError, match="plate_format"):
        Recognizer(FakeAlpr([]), plate_format="[A-Z")
    with pytest.raises(ValueError, match="min_plate_length"):
        Recognizer(FakeAlpr([]), min_plate_length=0)


def test_alpr_calls_are_serialised() -> None:
    inside = 0
    overlaps: list[int] = []
    guard = threading.Lock()

    class Counting(FakeAlpr):
        def predict(self, frame: np.ndarray) -> list[Result]:
            nonlocal inside
            with guard:
                inside += 1
                overlaps.append(inside)
            for _ in range(2000):  # give the other threads a chance to enter
                pass
            with guard:
                inside -= 1
            return [result("ABC123", [0.9] * 6)]

    rec = Recognizer(Counting([]))
    threads = [
        threading.Thread(target=lambda: [rec.read(FRAME) for _ in range(20)]) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(overlaps) == 80 and max(overlaps) == 1


# --- second look and the OCR's odds -------------------------------------------------------------

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"


def slot_result(text: str, alternatives: dict[int, tuple[str, float]] | None = None) -> Any:
    """A SlotOcrResult: ``text`` at 0.9 per slot (or shared with an alternative), pads after."""
    probs = np.zeros((10, len(ALPHABET)), dtype=np.float32)
    for slot in range(10):
        ch = text[slot] if slot < len(text) else "_"
        alt = (alternatives or {}).get(slot)
        if alt is None:
            probs[slot, ALPHABET.index(ch)] = 0.9 if ch != "_" else 1.0
            probs[slot, ALPHABET.index("_" if ch != "_" else "0")] += 0.0 if ch == "_" else 0.1
        else:
            probs[slot, ALPHABET.index(ch)] = 1.0 - alt[1]
            probs[slot, ALPHABET.index(alt[0])] = alt[1]
    return SlotOcrResult(
        text=text,
        confidence=[float(p) for p in probs.max(axis=-1)],
        slot_probs=probs,
        alphabet=ALPHABET,
    )


class FakeOcr:
    """The OCR half of fast-alpr: one result per crop, and the crops it was given."""

    def __init__(self, results: list[Any]) -> None:
        self.results = results
        self.crops: list[tuple[int, ...]] = []

    def predict(self, crop: np.ndarray) -> Any:
        self.crops.append(crop.shape)
        return self.results.pop(0) if self.results else None


class FakeAlprWithOcr(FakeAlpr):
    def __init__(self, results: list[Result], ocr: FakeOcr) -> None:
        super().__init__(results)
        self.ocr = ocr


def unsure_first_look(text: str, unsure_at: int, p: float = 0.6) -> Result:
    chars = [0.99] * len(text)
    chars[unsure_at] = p
    return result(text, chars)


def test_odds_come_from_the_slot_probabilities() -> None:
    ocr = slot_result("AB12", {2: ("I", 0.3)})
    read = Result(Detection(0.9, Box(1, 2, 30, 12)), ocr)
    [plate] = fake_read([read], second_look_budget_ms=0)
    assert plate.char_confidences == pytest.approx((0.9, 0.9, 0.7, 0.9))
    assert plate.char_odds[2] == (("1", pytest.approx(0.7)), ("I", pytest.approx(0.3)))
    assert [o[0][0] for o in plate.char_odds] == ["A", "B", "1", "2"]  # the pad is no character


def test_a_plain_ocr_result_has_no_odds() -> None:
    [plate] = fake_read([result("AB12C", [0.5, 0.6, 0.7, 0.8, 0.9])])
    assert plate.char_odds == ()


def test_an_unsure_read_gets_a_second_look_at_a_wider_crop() -> None:
    ocr = FakeOcr([slot_result("FE5R2D", {0: ("E", 0.02)})])
    alpr = FakeAlprWithOcr([unsure_first_look("EE5R2D", 0, p=0.2)], ocr)
    [plate] = Recognizer(alpr).read(FRAME)
    assert plate.text == "FE5R2D"  # the second look's F (0.98) outweighs the first's E (0.2)
    assert plate.char_confidences[0] == pytest.approx((0.98 + 0.0) / 2)
    assert ocr.crops == [(14, 34, 3)]  # box 1,2-30,12 widened by 15% / 20% per side, clipped
    assert plate.box == (1, 2, 30, 12)


class FakeDetector:
    def __init__(self, detections: list[Detection]) -> None:
        self.detections = detections

    def predict(self, frame: np.ndarray) -> list[Detection]:
        return self.detections


class FakeDetectorAndOcr:
    """fast-alpr's ALPR seen as its two halves, as the recognizer drives it."""

    def __init__(self, detector: FakeDetector, ocr: FakeOcr) -> None:
        self.detector = detector
        self.ocr = ocr

    def predict(self, frame: np.ndarray) -> list[Result]:
        raise AssertionError("the recognizer reads the detector's boxes itself")


def test_the_ocr_reads_the_detectors_box_grown_so_edge_characters_are_not_clipped() -> None:
    ocr = FakeOcr([slot_result("FE5R2D", {})])
    alpr = FakeDetectorAndOcr(FakeDetector([Detection(0.77, Box(1, 2, 30, 12))]), ocr)
    [plate] = Recognizer(alpr, second_look_budget_ms=0).read(FRAME)
    assert ocr.crops == [(12, 32, 3)]  # box 1,2-30,12 widened by 8% / 10% per side, clipped
    assert (plate.text, plate.box, plate.detection_confidence) == ("FE5R2D", (1, 2, 30, 12), 0.77)


def test_a_sure_read_or_a_spent_budget_gets_no_second_look() -> None:
    ocr = FakeOcr([slot_result("XXXXXX")])
    sure = FakeAlprWithOcr([result("FE5R2D", [0.99] * 6)], ocr)
    assert Recognizer(sure).read(FRAME)[0].text == "FE5R2D"
    spent = FakeAlprWithOcr([unsure_first_look("EE5R2D", 0)], ocr)
    assert Recognizer(spent, second_look_budget_ms=0).read(FRAME)[0].text == "EE5R2D"
    assert ocr.crops == []


def test_looks_of_different_lengths_keep_the_surer_length() -> None:
    first = PlateRead("K4W3L", 0.7, (0, 0, 9, 9), (0.5, 0.7, 0.7, 0.8, 0.8))
    second = PlateRead("FK4W3L", 0.95, (0, 0, 9, 9), (0.95,) * 6)
    voted = vote_looks(first, second)
    assert (voted.text, voted.char_confidences) == ("FK4W3L", (0.95,) * 6)
    assert voted.box == first.box


def test_looks_that_disagree_leave_the_position_unsure() -> None:
    h = ((("H", 0.6), ("W", 0.4)),)
    w = ((("W", 0.7), ("H", 0.3)),)
    voted = vote_looks(
        PlateRead("H", 0.6, (0, 0, 1, 1), (0.6,), char_odds=h),
        PlateRead("W", 0.7, (0, 0, 1, 1), (0.7,), char_odds=w),
    )
    assert voted.text == "W"
    assert voted.char_confidences == pytest.approx((0.35,))
    assert voted.char_odds == ((("W", pytest.approx(0.55)), ("H", pytest.approx(0.45))),)


def test_models_dir_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARKGATE_MODELS_DIR", "/x/models")
    assert models_dir_from_env() == Path("/x/models")
    monkeypatch.setenv("PARKGATE_MODELS_DIR", "")
    assert models_dir_from_env() is None
    monkeypatch.delenv("PARKGATE_MODELS_DIR")
    assert models_dir_from_env() is None


def test_hub_names() -> None:
    assert (
        hub_detector_name("yolo-v9-t-416-license-plates-end2end-int8-dequant-fp32.onnx")
        == "yolo-v9-t-416-license-plate-end2end"
    )
    assert hub_ocr_name("cct_xs_v2_global") == "cct-xs-v2-global-model"


def test_no_models_dir_uses_the_hub_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import fast_alpr.default_ocr
    import open_image_models

    calls: dict[str, Any] = {}

    def fake_detector(model: str, **kwargs: Any) -> FakeAlpr:
        calls["detector"] = (model, kwargs)
        return FakeAlpr([])

    def fake_ocr(**kwargs: Any) -> FakeAlpr:
        calls["ocr"] = kwargs
        return FakeAlpr([])

    monkeypatch.setattr(open_image_models, "create_detector", fake_detector)
    monkeypatch.setattr(fast_alpr.default_ocr, "DefaultOCR", fake_ocr)
    Recognizer.from_models(None, threads=3, detection_threshold=0.3)
    model, options = calls["detector"]
    assert model == "yolo-v9-t-416-license-plate-end2end"
    assert options["conf_thresh"] == 0.3
    assert options["sess_options"].intra_op_num_threads == 3
    assert calls["ocr"]["hub_ocr_model"] == "cct-xs-v2-global-model"
    assert calls["ocr"]["sess_options"].intra_op_num_threads == 3


def test_missing_models_dir_names_path_and_files(tmp_path: Path) -> None:
    with pytest.raises(ModelsNotFound, match=r"nowhere.*cct_xs_v2_global_plate_config\.yaml"):
        Recognizer.from_models(tmp_path / "nowhere")
    (tmp_path / "cct_xs_v2_global.onnx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"lacks yolo-v9-t-416.*fp32\.onnx, cct_xs_v2_g"):
        Recognizer.from_models(tmp_path)


# --- the real models --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recognizer(models_dir: Path) -> Recognizer:
    return Recognizer.from_models(models_dir, threads=2)


def sample(dataset_dir: Path, region: str, name: str) -> Sample:
    return next(s for s in load_region(region, dataset_dir) if s.image.name == name)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("region", "name"),
    [
        ("us", "12c6cb72-3ea3-49e7-b381-e0cdfc5e8960.jpg"),
        ("us", "car16.jpg"),  # two cars in the photo
        ("eu", "eu1.jpg"),
        ("eu", "test_056.jpg"),  # labelled RK3OOAG: scored with O≡0
    ],
)
def test_real_photo_is_read(
    recognizer: Recognizer, dataset_dir: Path, region: str, name: str
) -> None:
    truth = sample(dataset_dir, region, name)
    reads = recognizer.read_file(truth.image)
    assert any(same_plate(r.text, truth.plate) for r in reads), (truth.plate, reads)
    assert [r.confidence for r in reads] == sorted((r.confidence for r in reads), reverse=True)
    for r in reads:
        assert len(r.char_confidences) == len(r.text) and 0 < r.confidence <= 1


@pytest.mark.integration
def test_every_plate_in_a_frame_is_returned(recognizer: Recognizer, dataset_dir: Path) -> None:
    reads = recognizer.read_file(sample(dataset_dir, "us", "car16.jpg").image)
    assert len(reads) >= 2


@pytest.mark.integration
def test_blank_image_reads_nothing(recognizer: Recognizer) -> None:
    assert recognizer.read(np.full((480, 640, 3), 127, dtype=np.uint8)) == []


@pytest.mark.integration
def test_unreadable_files(recognizer: Recognizer, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UnreadableImage, match=r"corrupt\.jpg"):
        recognizer.read_file(corrupt)
    with pytest.raises(UnreadableImage, match=r"missing\.jpg"):
        recognizer.read_file(tmp_path / "missing.jpg")


@pytest.mark.integration
def test_real_reads_carry_the_ocr_odds(recognizer: Recognizer, dataset_dir: Path) -> None:
    s = load_region("eu", dataset_dir)[0]
    reads = recognizer.read_file(s.image)
    assert reads and all(len(r.char_odds) == len(r.text) for r in reads)
    for r in reads:
        assert [o[0][0] for o in r.char_odds] == list(r.text)
        assert all(sum(p for _, p in o) <= 1.0 + 1e-6 for o in r.char_odds)


@pytest.mark.integration
def test_threads_and_spinning_are_set(models_dir: Path) -> None:
    rec = Recognizer.from_models(models_dir, threads=1)
    alpr: Any = rec._alpr
    for session in (alpr.detector.model, alpr.ocr.inner.ocr_model.model):
        options = session.get_session_options()
        assert options.intra_op_num_threads == 1
        assert options.inter_op_num_threads == 1
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
