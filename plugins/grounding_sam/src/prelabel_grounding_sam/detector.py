"""Grounding DINO through transformers: images + labelled phrases -> labelled boxes.

The text is tokenized here (not by the processor, which rewrites some prompts), so the token
offsets used to find each phrase's tokens are those of the ids the model reads.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from prelabel_grounding_sam.phrases import Phrase, build_prompt, chunk_phrases, match_phrases, nms, token_spans

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    label: str
    phrase: str
    score: float  # box confidence
    phrase_score: float


class GroundingDino:
    """One GroundingDinoForObjectDetection and its processor, loaded once per process."""

    def __init__(self, source: str, device: str):
        import torch
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        self.source = source
        self.device = device
        self.processor = AutoProcessor.from_pretrained(source)
        self.tokenizer = self.processor.tokenizer
        self.model = GroundingDinoForObjectDetection.from_pretrained(source).to(device).eval()
        self.max_text_len = int(self.model.config.max_text_len)
        self.calls = 0
        self._torch = torch
        self._tokens: dict[str, int] = {}

    def count_tokens(self, text: str) -> int:
        if text not in self._tokens:
            self._tokens[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._tokens[text]

    def detect(
        self,
        images: list[np.ndarray],
        phrases: list[Phrase],
        box_threshold: float,
        text_threshold: float,
        nms_iou: float = 0.7,
        max_detections: int = 100,
    ) -> list[list[Detection]]:
        """One list of detections per image (RGB HxWx3 arrays), best first. Phrases beyond
        the model's 256 text tokens are split over several passes."""
        found: list[list[Detection]] = [[] for _ in images]
        if not images or not phrases:
            return found
        torch = self._torch
        pixels = self.processor.image_processor(images=images, return_tensors="pt", input_data_format="channels_last")
        for chunk in chunk_phrases(phrases, self.count_tokens, self.max_text_len):
            text, char_spans = build_prompt(chunk)
            encoded = self.tokenizer(text, return_offsets_mapping=True, return_token_type_ids=True)
            spans = token_spans(encoded["offset_mapping"], char_spans)
            batch = {
                "pixel_values": pixels["pixel_values"].to(self.device),
                "pixel_mask": pixels["pixel_mask"].to(self.device),
                **{
                    key: torch.tensor([encoded[key]] * len(images), device=self.device)
                    for key in ("input_ids", "attention_mask", "token_type_ids")
                },
            }
            with torch.inference_mode():
                out = self.model(**batch)
            self.calls += 1
            probs = out.logits.float().sigmoid().cpu().numpy()  # images x queries x max_text_len
            boxes = out.pred_boxes.float().cpu().numpy()  # cx, cy, w, h relative to each image
            for i, image in enumerate(images):
                height, width = image.shape[:2]
                for match in match_phrases(probs[i], spans, box_threshold, text_threshold):
                    cx, cy, w, h = boxes[i, match.query]
                    box = (
                        max(0.0, (cx - w / 2) * width),
                        max(0.0, (cy - h / 2) * height),
                        min(float(width), (cx + w / 2) * width),
                        min(float(height), (cy + h / 2) * height),
                    )
                    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                        continue
                    phrase = chunk[match.phrase]
                    found[i].append(
                        Detection(
                            tuple(float(v) for v in box), phrase.label, phrase.text, match.score, match.phrase_score
                        )
                    )
        return [suppress(dets, nms_iou, max_detections) for dets in found]


def suppress(detections: list[Detection], iou: float, limit: int) -> list[Detection]:
    """Per-label non-maximum suppression, then the ``limit`` best."""
    kept: list[Detection] = []
    for label in dict.fromkeys(d.label for d in detections):
        mine = [d for d in detections if d.label == label]
        keep = nms(np.array([d.box for d in mine], dtype=np.float32), np.array([d.score for d in mine]), iou)
        kept += [mine[k] for k in keep]
    return sorted(kept, key=lambda d: -d.score)[:limit]


_DETECTORS: OrderedDict[tuple, GroundingDino] = OrderedDict()
_LOCK = threading.Lock()


def load_detector(source: str, device: str, keep: int = 2) -> Any:
    """The process's Grounding DINO for ``source`` on ``device``, loaded on first use."""
    key = (source, device)
    with _LOCK:
        detector = _DETECTORS.get(key)
        if detector is None:
            log.info("loading Grounding DINO %s on %s", source, device)
            detector = _DETECTORS[key] = GroundingDino(source, device)
            while len(_DETECTORS) > keep:
                _DETECTORS.popitem(last=False)
        _DETECTORS.move_to_end(key)
        return detector
