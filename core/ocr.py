"""Text in pictures: RapidOCR (PP-OCR detection, direction and recognition models on ONNX Runtime).

The models ship inside the ``rapidocr-onnxruntime`` wheel, so reading text works offline. One
engine is loaded per process, on first use (the indexer's decode workers each load their own), and
runs on one thread: the workers already run one per core, below the model's priority.

Cost is bounded per picture: it is downscaled to at most ``max_pixels`` before detection (which
costs in proportion to the pixels: 0.5 MP reads 2.4x faster than 1 MP with the same words on the
benchmark's pictures, bench/ocr.py), and recognition stops after ``budget_seconds`` of CPU time
(the lines read by then are kept, with a warning), so a page of small print in a camera photo cannot stall a run. Nothing here raises for a bad picture or
a model that will not load: the :class:`OcrResult` says what happened.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Recognition runs on this many text boxes at a time; the budget is checked between batches.
REC_BATCH = 6
MODEL_FILES = {
    "det": "ch_PP-OCRv4_det_infer.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
}


@dataclass(frozen=True)
class OcrConfig:
    """How pictures are read; picklable, so decode workers get it with each job.

    ``max_pixels``: pictures are downscaled to at most this many pixels before reading.
    ``budget_seconds``: recognition stops after this much CPU time per picture (detection always
    finishes; its cost is set by ``max_pixels``).
    ``min_confidence``: lines read with less confidence (0..1) are dropped as noise.
    ``models``: a folder holding the three ONNX files of :data:`MODEL_FILES` (None: the wheel's).
    """

    max_pixels: int = 500_000
    budget_seconds: float = 3.0
    min_confidence: float = 0.6
    models: str | None = None

    @property
    def max_side(self) -> int:
        """The longer side of a 16:9 picture of ``max_pixels``: what video frames are decoded at."""
        return max(32, int(math.sqrt(self.max_pixels * 16 / 9)))


@dataclass(frozen=True)
class OcrLine:
    """One line of text: ``box`` is its 4 corners [[x, y], ...] in pixels of the original picture
    (clockwise from top left); ``time`` the second of the video frame it was read on (None: image)."""

    text: str
    confidence: float
    box: list[list[float]]
    time: float | None = None


@dataclass
class OcrResult:
    """What reading one picture gave. ``error``: nothing could be read (``retry``: the cause is not
    the picture, e.g. the model did not load, so a later run should try again); ``warning``: the
    budget ran out and only the lines read by then are kept."""

    lines: list[OcrLine] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    warning: str | None = None
    retry: bool = False

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def scaled(self, fx: float, fy: float) -> OcrResult:
        """The same result with boxes scaled (from a downscaled decode to the original's pixels)."""
        if fx == 1.0 and fy == 1.0:
            return self
        lines = [
            OcrLine(
                ln.text, ln.confidence, [[round(x * fx, 1), round(y * fy, 1)] for x, y in ln.box], ln.time
            )
            for ln in self.lines
        ]
        return OcrResult(lines, self.seconds, self.error, self.warning, self.retry)


class _Engines:
    """One RapidOCR engine per process and models folder, loaded on first use (or its load error)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reading = threading.Lock()
        self.loaded: dict[str | None, Any] = {}

    def get(self, models: str | None) -> Any:
        with self.lock:
            if models not in self.loaded:
                try:
                    self.loaded[models] = _load(models)
                except ImportError as exc:
                    self.loaded[models] = OcrModelError(
                        f"the OCR model cannot load ({exc}): pip install 'glimpse-search[ocr]'"
                    )
                except Exception as exc:  # noqa: BLE001 - kept and reported with every picture
                    self.loaded[models] = OcrModelError(
                        f"the OCR model cannot load: {type(exc).__name__}: {exc}"
                    )
            engine = self.loaded[models]
        if isinstance(engine, OcrModelError):
            raise engine
        return engine


class OcrModelError(RuntimeError):
    """The OCR models could not be loaded (missing package or files, broken files)."""


_engines = _Engines()


def _load(models: str | None) -> Any:
    from rapidocr_onnxruntime import RapidOCR

    options: dict[str, Any] = {
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        # Detect at the picture's own (capped) size: RapidOCR's default upscales to a 736 px
        # *shorter* side, which makes every small catalogue image a large one.
        "det_limit_type": "max",
    }
    if models is not None:
        folder = Path(models)
        for part, name in MODEL_FILES.items():
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing")
            options[f"{part}_model_path"] = str(folder / name)
    return RapidOCR(**options)


def read_text(image: Image.Image | np.ndarray, config: OcrConfig, time_s: float | None = None) -> OcrResult:
    """Read the text in ``image`` (PIL, or an (H, W, 3) uint8 RGB array): lines with confidence
    ``>= config.min_confidence``, boxes in the image's own pixels. Never raises."""
    try:
        engine = _engines.get(config.models)
    except OcrModelError as exc:
        return OcrResult(error=str(exc), retry=True)
    started = time.perf_counter()  # loading the model (once per process) is not the picture's time
    try:
        # RapidOCR keeps per-call state on the engine: the indexer's image and video threads take
        # turns (each decode worker process has its own engine).
        with _engines.reading:
            lines, complete = _read(engine, image, config, time.thread_time(), time_s)
    except Exception as exc:  # noqa: BLE001 - one unreadable picture never stops a run
        return OcrResult(
            error=f"OCR failed: {type(exc).__name__}: {exc}", seconds=time.perf_counter() - started
        )
    seconds = time.perf_counter() - started
    warning = None
    if not complete:
        warning = f"OCR stopped at its budget of {config.budget_seconds:g}s of CPU, kept {len(lines)} lines"
        if not lines:
            return OcrResult(error=warning, seconds=seconds)
    return OcrResult(lines, seconds, warning=warning)


def _read(
    engine: Any, image: Image.Image | np.ndarray, config: OcrConfig, cpu_start: float, time_s: float | None
) -> tuple[list[OcrLine], bool]:
    """RapidOCR's own steps (detect, crop, orient, recognise) with the budget checked between
    recognition batches; returns the lines and whether every box was read. The budget counts this
    thread's CPU time (ONNX Runtime runs on the calling thread with one intra-op thread), so a busy
    machine slows reading down but never makes it drop text."""
    rgb = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
    raw_h, raw_w = rgb.shape[:2]
    scale = min(1.0, math.sqrt(config.max_pixels / max(1, raw_h * raw_w)))
    if scale < 1.0:
        size = (max(1, round(raw_w * scale)), max(1, round(raw_h * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    img, ratio_h, ratio_w = engine.preprocess(bgr)
    op_record: dict[str, Any] = {"preprocess": {"ratio_h": ratio_h, "ratio_w": ratio_w}}
    img, op_record = engine.maybe_add_letterbox(img, op_record)
    boxes, _ = engine.auto_text_det(img)
    if boxes is None:
        return [], True
    crops = engine.get_crop_img_list(img, boxes)
    corners = engine._get_origin_points(boxes, op_record, bgr.shape[0], bgr.shape[1]) / scale
    lines: list[OcrLine] = []
    for start in range(0, len(crops), REC_BATCH):
        if time.thread_time() - cpu_start > config.budget_seconds:
            return lines, False
        batch = crops[start : start + REC_BATCH]
        if engine.use_cls:
            batch, _, _ = engine.text_cls(batch)
        recognised, _ = engine.text_rec(batch, False)
        for i, rec in enumerate(recognised):
            text, confidence = str(rec[0]).strip(), float(rec[1])
            if text and confidence >= config.min_confidence:
                box = [[round(float(x), 1), round(float(y), 1)] for x, y in corners[start + i]]
                lines.append(OcrLine(text, round(confidence, 4), box, time_s))
    return lines, True


def signature(image: np.ndarray) -> np.ndarray:
    """A 32x32 grey thumbnail of an (H, W, 3) uint8 frame: frames whose signatures barely differ
    (:func:`looks_same`) show the same text, so a video reads it once."""
    return np.asarray(
        Image.fromarray(image).convert("L").resize((32, 32), Image.Resampling.BILINEAR), np.float32
    )


def looks_same(a: np.ndarray | None, b: np.ndarray, tolerance: float = 4.0) -> bool:
    """Whether two :func:`signature` s differ by less than ``tolerance`` grey levels on average."""
    return a is not None and float(np.abs(a - b).mean()) < tolerance
