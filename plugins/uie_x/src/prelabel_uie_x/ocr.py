"""Document images to text with positions: OCR (rapidocr, whose models ship in its wheel), then
layout (lines in reading order), then the per-character boxes UIE-X and the converter need."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Segment:
    """One OCR line: its axis-aligned box in pixels of the original image, text and score."""

    x1: float
    y1: float
    x2: float
    y2: float
    text: str
    score: float = 1.0

    @property
    def box(self) -> list[int]:
        return [int(round(self.x1)), int(round(self.y1)), int(round(self.x2)), int(round(self.y2))]


def reading_order(segments: list[Segment]) -> list[Segment]:
    """Top-to-bottom lines, left-to-right within a line (boxes whose vertical centres lie
    within half a line height of each other share a line)."""
    rows: list[list[Segment]] = []
    for seg in sorted(segments, key=lambda s: (s.y1 + s.y2) / 2):
        centre = (seg.y1 + seg.y2) / 2
        if rows:
            last = rows[-1]
            ref = sum((s.y1 + s.y2) / 2 for s in last) / len(last)
            height = max(s.y2 - s.y1 for s in last)
            if abs(centre - ref) <= height / 2:
                last.append(seg)
                continue
        rows.append([seg])
    return [seg for row in rows for seg in sorted(row, key=lambda s: s.x1)]


def layout(segments: list[Segment]) -> list[tuple[list[int], str]]:
    """Taskflow's ``layout`` input: ``[([x1, y1, x2, y2], text), ...]``."""
    return [(seg.box, seg.text) for seg in segments if seg.text]


def content(segments: list[Segment]) -> str:
    """The document text UIE-X reads: the lines' texts joined without separators, as Taskflow
    joins them (offsets in its results index this string)."""
    return "".join(seg.text for seg in segments)


def char_boxes(segments: list[Segment]) -> list[tuple[float, float, float, float]]:
    """A box per character of ``content(segments)``: each line's width split evenly, as
    Taskflow does when it adds boxes to its results."""
    boxes = []
    for seg in segments:
        n = len(seg.text)
        width = (seg.x2 - seg.x1) / n if n else 0.0
        boxes.extend((seg.x1 + i * width, seg.y1, seg.x1 + (i + 1) * width, seg.y2) for i in range(n))
    return boxes


def span_box(segments: list[Segment], start: int, end: int) -> tuple[float, float, float, float] | None:
    """The pixel box covering characters [start, end) of the content."""
    boxes = char_boxes(segments)[start:end]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def union_box(boxes: list[list[float]]) -> tuple[float, float, float, float] | None:
    """The box covering Taskflow's per-line ``bbox`` list of a result."""
    boxes = [b for b in boxes if len(b) == 4]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


class OcrEngine:
    """rapidocr on ONNX Runtime, loaded on first use, with a small cache by image content
    (training and prediction often read the same document twice)."""

    def __init__(self, min_score: float = 0.5, side_len: int = 736, cache_size: int = 64):
        self.min_score = min_score
        self.side_len = side_len
        self._engine: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[Segment]] = OrderedDict()
        self._cache_size = cache_size

    def _load(self) -> Any:
        if self._engine is None:
            key = f"rapidocr-{self.side_len}"
            with _shared_lock:  # the ONNX sessions are loaded once per process
                if key not in _shared:
                    try:
                        from rapidocr_onnxruntime import RapidOCR
                    except ImportError as exc:  # pragma: no cover - depends on the environment
                        raise ImportError("document images need rapidocr: pip install rapidocr-onnxruntime") from exc
                    # pages are scaled so that their shorter side is side_len for text detection
                    _shared[key] = RapidOCR(det_limit_side_len=self.side_len, det_limit_type="min")
            self._engine = _shared[key]
        return self._engine

    def warm_up(self) -> None:
        with self._lock:
            self._load()

    def __call__(self, image: Any) -> list[Segment]:
        """OCR lines of a PIL RGB image, in reading order."""
        import numpy as np

        pixels = np.asarray(image.convert("RGB"))
        key = hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest() + str(pixels.shape)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            # BGR, as rapidocr expects from OpenCV; no text-angle classifier (PaddleNLP's DocParser
            # runs PaddleOCR without one too: document lines are upright)
            raw, _ = self._load()(np.ascontiguousarray(pixels[:, :, ::-1]), use_cls=False)
        segments = []
        for points, text, score in raw or []:
            text = str(text).strip()
            if not text or float(score) < self.min_score:
                continue
            xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
            segments.append(Segment(min(xs), min(ys), max(xs), max(ys), text, float(score)))
        segments = reading_order(segments)
        with self._lock:
            self._cache[key] = segments
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return segments
