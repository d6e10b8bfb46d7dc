"""Plate recognition: fast-alpr behind a small, thread-safe :class:`Recognizer`.

This is the only module that imports ``fast_alpr``, ``open_image_models`` or ``onnxruntime`` (and
``cv2`` for decoding files); the imports happen inside the functions that need them, never at
import time.

Confidence of a read
    fast-plate-ocr returns one probability per *slot* (``max_plate_slots`` = 10 for the global
    models), and the slots after the plate text hold the pad character ``_`` with probabilities of
    about 1.0. Averaging all slots (as fast-alpr's own drawing code does) inflates short plates, so
    only the slots of real characters are kept. The overall confidence is the **mean of those
    per-character confidences**: it separates right from wrong reads as well as the minimum or the
    product (AUC 0.894 / 0.892 / 0.895 on the shared OpenALPR benchmark, printed by
    ``bench/recognition.py``) and is the easiest to reason about. It is rounded to
    three decimals, and reads are ordered by confidence, then by detection confidence: legible
    plates often all score 0.999+, and then the better-framed detection is the car at the gate
    (on the EU set this puts the labelled plate first in 71/71 photos instead of 70/71).

Crops and the second look
    The detector's boxes often clip the first or last character, so the OCR reads the box grown
    by :data:`READ_MARGIN` (on the shared dev photos that reads 205 of 215 plates right where the
    detector's own box reads 196, at the same cost: one OCR run per plate). When a read has a
    character below ``second_look_below``, the OCR runs once more on a still wider crop
    (:data:`SECOND_LOOK_MARGIN`) while the frame's ``second_look_budget_ms`` lasts, and the two
    looks are voted per character: reads of the length with more summed confidence win, and each
    position keeps the character with the most summed probability, its confidence being that sum
    over the number of looks (two looks that disagree leave the position unsure, which is what
    the matcher needs to know). A look costs about 5 ms.

Exceptions::

    RecognitionError
     ├── ModelsNotFound (also FileNotFoundError)  the models directory or a file in it is missing
     └── UnreadableImage (also ValueError)        an image file is missing or cannot be decoded
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gate_agent.domain import CharOdds, PlateRead
from gate_agent.plates import ODDS_FLOOR, merge_odds, normalise

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_OCR",
    "MODELS_DIR_ENV",
    "ModelsNotFound",
    "PlateDetector",
    "RecognitionError",
    "Recognizer",
    "SlotOcr",
    "SlotOcrResult",
    "UnreadableImage",
    "build_alpr",
    "hub_detector_name",
    "hub_ocr_name",
    "load_image",
    "models_dir_from_env",
    "vote_looks",
]

log = logging.getLogger(__name__)

MODELS_DIR_ENV = "PARKGATE_MODELS_DIR"
DEFAULT_DETECTOR = "yolo-v9-t-416-license-plates-end2end-int8-dequant-fp32.onnx"
DEFAULT_OCR = "cct_xs_v2_global"
_PLATE_LABELS = ("License Plate",)
_CPU = ["CPUExecutionProvider"]
_CONFIDENCE_DIGITS = 3  # finer differences are OCR noise; ties go to the surer detection
READ_MARGIN = (0.08, 0.10)  # the OCR reads the detector's box grown by these fractions per side
SECOND_LOOK_MARGIN = (0.15, 0.20)  # and, when unsure, once more on a box grown this much


class RecognitionError(Exception):
    """Root of the recognizer's errors."""


class ModelsNotFound(RecognitionError, FileNotFoundError):
    """The models directory, or one of the files expected in it, is missing."""


class UnreadableImage(RecognitionError, ValueError):
    """An image file is missing or cannot be decoded."""


class PlateDetector(Protocol):
    """What :class:`Recognizer` needs from fast-alpr's ``ALPR`` (fakes implement this in tests)."""

    def predict(self, frame: np.ndarray) -> Sequence[Any]: ...


def models_dir_from_env() -> Path | None:
    """The models directory from ``$PARKGATE_MODELS_DIR``, or None (hub download) when unset."""
    value = os.environ.get(MODELS_DIR_ENV, "").strip()
    return Path(value) if value else None


class Recognizer:
    """Finds every plate in a frame. One instance is shared by all lanes.

    ``read`` holds a lock around the ALPR call. The onnxruntime sessions are sized for the whole
    device (``threads`` intra-op threads), so two lanes running inference at once would only
    oversubscribe the cores and make both slower; and fast-alpr / open-image-models do not promise
    that their detector and OCR wrappers are safe to call concurrently. Serialising keeps latency
    predictable; the post-processing runs outside the lock.
    """

    def __init__(
        self,
        alpr: PlateDetector,
        *,
        min_plate_length: int = 4,
        min_confidence: float = 0.0,
        plate_format: str | None = None,
        second_look_below: float = 0.95,
        second_look_budget_ms: float = 80.0,
    ) -> None:
        if min_plate_length < 1:
            raise ValueError(f"min_plate_length must be at least 1, got {min_plate_length}")
        self._alpr = alpr
        self._lock = threading.Lock()
        self.min_plate_length = min_plate_length
        self.min_confidence = min_confidence
        self.plate_format = _compile_format(plate_format)
        self.second_look_below = second_look_below
        self.second_look_budget_ms = second_look_budget_ms

    @classmethod
    def from_models(
        cls,
        models_dir: Path | None,
        *,
        detector: str = DEFAULT_DETECTOR,
        ocr: str = DEFAULT_OCR,
        threads: int = 2,
        detection_threshold: float = 0.4,
        min_plate_length: int = 4,
        min_confidence: float = 0.0,
        plate_format: str | None = None,
    ) -> Recognizer:
        """Build fast-alpr from ``models_dir`` (offline), or from the model hub when it is None.

        With a directory it must hold ``detector`` (an end-to-end YOLOv9 ONNX file),
        ``{ocr}.onnx`` and ``{ocr}_plate_config.yaml``. With None the detector and OCR are fetched
        by their hub names (``yolo-v9-t-416-license-plate-end2end``, ``cct-xs-v2-global-model``
        for the defaults) into the libraries' caches.
        """
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        alpr = build_alpr(
            models_dir,
            detector=detector,
            ocr=ocr,
            threads=threads,
            detection_threshold=detection_threshold,
        )
        return cls(
            alpr,
            min_plate_length=min_plate_length,
            min_confidence=min_confidence,
            plate_format=plate_format,
        )

    def read(self, image: np.ndarray) -> list[PlateRead]:
        """Every plate found in a BGR frame, best confidence first (filters applied)."""
        started = time.perf_counter()
        with self._lock:
            first, detections = self._first_looks(image)
            deadline = started + self.second_look_budget_ms / 1000
            looked = [self._second_look(image, r, deadline) for r in first]
        reads = [r for r in looked if self._keep(r)]
        reads.sort(key=lambda r: (r.confidence, r.detection_confidence), reverse=True)
        log.debug(
            "recognised %d of %d detections in %.1f ms",
            len(reads),
            detections,
            (time.perf_counter() - started) * 1000,
        )
        if reads:
            log.debug("reads: %s", [(r.text, round(r.confidence, 3)) for r in reads])
        return reads

    def read_file(self, path: str | os.PathLike[str]) -> list[PlateRead]:
        """:meth:`read` on an image file; :class:`UnreadableImage` if it is missing or corrupt."""
        return self.read(load_image(path))

    def _first_looks(self, image: np.ndarray) -> tuple[list[PlateRead], int]:
        """One read per detected plate, of the detector's box grown by :data:`READ_MARGIN`
        (fast-alpr's own ``predict`` when the detector and the OCR are not reachable apart)."""
        height, width = image.shape[:2]
        detector = getattr(self._alpr, "detector", None)
        if detector is None or getattr(self._alpr, "ocr", None) is None:
            results = list(self._alpr.predict(image))
            converted = [_to_read(res, width, height) for res in results]
            return [r for r in converted if r is not None], len(results)
        detections = list(detector.predict(image))
        reads = []
        for detection in detections:
            b = detection.bounding_box
            box = (
                max(int(b.x1), 0),
                max(int(b.y1), 0),
                min(int(b.x2), width),
                min(int(b.y2), height),
            )
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            read = self._read_crop(image, box, READ_MARGIN)
            if read is not None:
                reads.append(
                    dataclasses.replace(read, detection_confidence=float(detection.confidence))
                )
        return reads, len(detections)

    def _second_look(self, image: np.ndarray, read: PlateRead, deadline: float) -> PlateRead:
        """``read`` voted with a read of a wider crop, when it is unsure and time remains."""
        unsure = not read.char_confidences or min(read.char_confidences) < self.second_look_below
        if not unsure or time.perf_counter() >= deadline:
            return read
        second = self._read_crop(image, read.box, SECOND_LOOK_MARGIN)
        return read if second is None else vote_looks(read, second)

    def read_box(
        self, image: np.ndarray, box: tuple[int, int, int, int], margin: tuple[float, float]
    ) -> PlateRead | None:
        """OCR alone on ``box`` grown by ``margin`` (fractions of its width/height per side;
        negative shrinks). None when the OCR is not reachable or reads nothing."""
        with self._lock:
            return self._read_crop(image, box, margin)

    def _read_crop(
        self, image: np.ndarray, box: tuple[int, int, int, int], margin: tuple[float, float]
    ) -> PlateRead | None:
        ocr = getattr(self._alpr, "ocr", None)
        if ocr is None:
            return None
        result = ocr.predict(_crop(image, box, margin))
        if result is None or not result.text:
            return None
        text, char_conf = _real_characters(result.text, result.confidence)
        if not text or len(char_conf) != len(text):
            return None
        confidence = round(sum(char_conf) / len(char_conf), _CONFIDENCE_DIGITS)
        return PlateRead(text, confidence, box, char_conf, char_odds=_char_odds(result, text))

    def _keep(self, read: PlateRead) -> bool:
        if len(read.text) < self.min_plate_length:
            return False
        if read.confidence < self.min_confidence:
            return False
        return self.plate_format is None or self.plate_format.fullmatch(read.text) is not None


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to a BGR array, or raise :class:`UnreadableImage`."""
    import cv2

    file = Path(path)
    if not file.is_file():
        raise UnreadableImage(f"image {file} does not exist or is not a file")
    image = cv2.imdecode(np.fromfile(file, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableImage(f"image {file} could not be decoded (corrupt or not an image)")
    return image


def _crop(
    image: np.ndarray, box: tuple[int, int, int, int], margin: tuple[float, float]
) -> np.ndarray:
    x1, y1, x2, y2 = box
    dx = int((x2 - x1) * margin[0])
    dy = int((y2 - y1) * margin[1])
    height, width = image.shape[:2]
    return image[max(y1 - dy, 0) : min(y2 + dy, height), max(x1 - dx, 0) : min(x2 + dx, width)]


def vote_looks(first: PlateRead, second: PlateRead) -> PlateRead:
    """Vote a second look at the same plate with the first, per character (module doc)."""
    by_length: dict[int, list[PlateRead]] = {}
    for look in (first, second):
        by_length.setdefault(len(look.text), []).append(look)
    group = max(by_length.values(), key=lambda g: sum(sum(_weights(r)) / len(r.text) for r in g))
    voted, confidences, odds = "", [], []
    for i in range(len(group[0].text)):
        tally: dict[str, float] = {}
        for look in group:
            tally[look.text[i]] = tally.get(look.text[i], 0.0) + _weights(look)[i]
        char, support = max(tally.items(), key=lambda item: item[1])
        voted += char
        confidences.append(support / len(group))
        odds.append(merge_odds([look.char_odds[i] for look in group if look.char_odds]))
    aligned = all(o and o[0][0] == c for o, c in zip(odds, voted, strict=True))
    return PlateRead(
        text=voted,
        confidence=round(sum(confidences) / len(confidences), _CONFIDENCE_DIGITS),
        box=first.box,
        char_confidences=tuple(confidences),
        detection_confidence=first.detection_confidence,
        char_odds=tuple(odds) if aligned else (),
    )


def _weights(read: PlateRead) -> tuple[float, ...]:
    if len(read.char_confidences) == len(read.text):
        return read.char_confidences
    return (read.confidence,) * len(read.text)


def _compile_format(plate_format: str | None) -> re.Pattern[str] | None:
    if plate_format is None:
        return None
    try:
        return re.compile(plate_format)
    except re.error as exc:
        raise ValueError(f"plate_format {plate_format!r} is not a valid regex: {exc}") from exc


def _to_read(result: Any, width: int, height: int) -> PlateRead | None:
    """Convert one fast-alpr ``ALPRResult`` to a :class:`PlateRead` (None when OCR gave nothing)."""
    ocr = result.ocr
    if ocr is None or not ocr.text:
        return None
    text, char_conf = _real_characters(ocr.text, ocr.confidence)
    if not text:
        return None
    if char_conf:
        confidence = float(sum(char_conf) / len(char_conf))
    else:
        confidence = float(ocr.confidence) if isinstance(ocr.confidence, int | float) else 0.0
    confidence = round(confidence, _CONFIDENCE_DIGITS)
    det = result.detection
    box = det.bounding_box
    return PlateRead(
        text=text,
        confidence=confidence,
        box=(
            max(int(box.x1), 0),
            max(int(box.y1), 0),
            min(int(box.x2), width),
            min(int(box.y2), height),
        ),
        char_confidences=char_conf,
        detection_confidence=float(det.confidence),
        char_odds=_char_odds(ocr, text),
    )


def _char_odds(ocr: Any, text: str) -> tuple[CharOdds, ...]:
    """Per character of ``text``, the OCR's probability of each plate character at its slot
    (from :class:`SlotOcrResult`; () from an OCR that does not give them)."""
    probs = getattr(ocr, "slot_probs", None)
    alphabet = getattr(ocr, "alphabet", "")
    if probs is None or not alphabet:
        return ()
    columns = [(i, ch) for i, ch in enumerate(alphabet) if normalise(ch) == ch]
    odds = []
    for ch, slot in zip(ocr.text, probs, strict=False):
        if not normalise(ch):
            continue
        kept = [(c, float(slot[i])) for i, c in columns if slot[i] >= ODDS_FLOOR]
        odds.append(tuple(sorted(kept, key=lambda cp: (-cp[1], cp[0]))))
    if len(odds) != len(text) or any(
        not o or o[0][0] != c for o, c in zip(odds, text, strict=True)
    ):
        return ()
    return tuple(odds)


def _real_characters(
    raw: str, confidence: float | Sequence[float]
) -> tuple[str, tuple[float, ...]]:
    """Normalised text and the confidences of its characters only.

    The OCR confidence list has one entry per model slot: slot ``i`` is ``raw[i]`` and the slots
    past ``len(raw)`` are trailing pad characters fast-plate-ocr stripped from the text. Pad or
    punctuation characters inside ``raw`` are dropped together with their confidences.
    """
    text = normalise(raw)
    if isinstance(confidence, int | float):
        return text, ()
    kept = [float(p) for ch, p in zip(raw, confidence, strict=False) if normalise(ch)]
    if len(kept) != len(text):  # fewer confidences than characters: do not guess an alignment
        return text, ()
    return text, tuple(kept)


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _expected_files(models_dir: Path, detector: str, ocr: str) -> list[Path]:
    return [
        models_dir / detector,
        models_dir / f"{ocr}.onnx",
        models_dir / f"{ocr}_plate_config.yaml",
    ]


def _check_models_dir(models_dir: Path, detector: str, ocr: str) -> list[Path]:
    files = _expected_files(models_dir, detector, ocr)
    names = ", ".join(f.name for f in files)
    if not models_dir.is_dir():
        raise ModelsNotFound(
            f"models directory {models_dir} does not exist; expected it to hold {names}"
        )
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ModelsNotFound(
            f"models directory {models_dir} lacks {', '.join(missing)}; expected {names}"
        )
    return files


def hub_detector_name(detector: str) -> str:
    """The open-image-models hub name of a detector file (its upstream model)."""
    name = detector.removesuffix(".onnx")
    for suffix in ("-int8-dequant-fp32", "-int8"):
        name = name.removesuffix(suffix)
    return name.replace("license-plates", "license-plate")


def hub_ocr_name(ocr: str) -> str:
    """fast-plate-ocr hub name of an OCR file stem: cct_xs_v2_global → cct-xs-v2-global-model."""
    if ocr.endswith("-model"):
        return ocr
    return ocr.replace("_", "-") + "-model"


def build_alpr(
    models_dir: Path | None,
    *,
    detector: str = DEFAULT_DETECTOR,
    ocr: str = DEFAULT_OCR,
    threads: int = 2,
    detection_threshold: float = 0.4,
) -> Any:
    """A plain fast-alpr ``ALPR`` on these models (what :meth:`Recognizer.from_models` wraps)."""
    from fast_alpr import ALPR
    from fast_alpr.default_ocr import DefaultOCR
    from open_image_models import create_detector

    options = _session_options(threads)
    if models_dir is None:
        log.info("loading plate models from the hub: %s, %s", detector, ocr)
        det = create_detector(
            hub_detector_name(detector),
            conf_thresh=detection_threshold,
            providers=_CPU,
            sess_options=options,
        )
        ocr_model = DefaultOCR(
            hub_ocr_model=hub_ocr_name(ocr),
            device="cpu",
            providers=_CPU,
            sess_options=options,
        )
        return ALPR(detector=det, ocr=SlotOcr(ocr_model))
    det_file, ocr_file, config_file = _check_models_dir(Path(models_dir), detector, ocr)
    log.info("loading plate models from %s (%d threads)", models_dir, threads)
    det = create_detector(
        det_file,
        backend="yolo_v9",
        class_labels=_PLATE_LABELS,
        conf_thresh=detection_threshold,
        providers=_CPU,
        sess_options=options,
    )
    ocr_model = DefaultOCR(
        model_path=ocr_file,
        config_path=config_file,
        device="cpu",
        providers=_CPU,
        sess_options=options,
    )
    return ALPR(detector=det, ocr=SlotOcr(ocr_model))


@dataclass(frozen=True)
class SlotOcrResult:
    """fast-alpr's ``OcrResult`` fields plus the OCR's whole output: per slot, a probability for
    every character of ``alphabet`` (``slot_probs``, shape slots × alphabet)."""

    text: str
    confidence: list[float]
    slot_probs: np.ndarray
    alphabet: str
    region: str | None = None
    region_confidence: float | None = None


class SlotOcr:
    """fast-alpr's ``DefaultOCR`` that keeps the per-slot probabilities (one ONNX run, as before).

    ``DefaultOCR.predict`` keeps only each slot's top probability; the matcher needs the others
    too (how likely the OCR found the booked plate's character where it read another one).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner  # a fast_alpr.default_ocr.DefaultOCR

    def predict(self, cropped_plate: np.ndarray) -> SlotOcrResult | None:
        import cv2
        from fast_plate_ocr.core.process import preprocess_image, resize_image

        if cropped_plate is None or cropped_plate.size == 0:
            return None
        recognizer = self.inner.ocr_model
        cfg = recognizer.config
        if cfg.image_color_mode == "grayscale":
            cropped_plate = cv2.cvtColor(cropped_plate, cv2.COLOR_BGR2GRAY)
        elif cfg.image_color_mode == "rgb":
            cropped_plate = cv2.cvtColor(cropped_plate, cv2.COLOR_BGR2RGB)
        x = resize_image(
            cropped_plate,
            cfg.img_height,
            cfg.img_width,
            image_color_mode=cfg.image_color_mode,
            keep_aspect_ratio=cfg.keep_aspect_ratio,
            interpolation_method=cfg.interpolation,
            padding_color=cfg.padding_color,
        )
        name = recognizer.plate_output_name
        (output,) = recognizer.model.run([name], {"input": preprocess_image(x)})
        probs = np.asarray(output).reshape(cfg.max_plate_slots, len(cfg.alphabet))
        raw = "".join(cfg.alphabet[i] for i in probs.argmax(axis=-1))
        text = raw.rstrip(cfg.pad_char) if cfg.pad_char else raw
        return SlotOcrResult(
            text=text,
            confidence=[float(p) for p in probs.max(axis=-1)],
            slot_probs=probs,
            alphabet=cfg.alphabet,
        )
