"""SAM 3 loaded once per process: the concept detector (text and exemplar-box prompts -> every
instance), the point tracker (clicks -> one mask) and the video model, from one directory in
transformers' format. torch and transformers are imported inside functions.

The concept detector encodes an image once and then answers any number of prompts: ``detect``
runs all of an image's prompts as one batch over that one encoding, and encoded prompts are
kept (they are the project's labels, the same for every task).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prelabel import LruCache, TaskError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Embedding:
    """One image's encoder output and its size (what the decoders need)."""

    features: Any
    height: int
    width: int


@dataclass(frozen=True)
class Instance:
    """One object found for a prompt: its mask (H x W bool), box (x1, y1, x2, y2 px), score."""

    mask: np.ndarray
    box: tuple[float, float, float, float]
    score: float


def image_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """RGB HxWx3 uint8, turned by its EXIF orientation as the browser shows it; the size is
    checked before any pixel is decoded."""
    from PIL import ImageOps

    from prelabel import open_image

    image = ImageOps.exif_transpose(open_image(data, max_pixels=max_pixels, mode=None))
    return np.array(image.convert("RGB"))


def _normalized_boxes(boxes: Sequence[Sequence[float]], width: int, height: int) -> list[list[float]]:
    """Pixel (x1, y1, x2, y2) -> normalized (cx, cy, w, h), the detector's exemplar format."""
    out = []
    for x1, y1, x2, y2 in boxes:
        x1, x2 = sorted((max(0.0, min(width, x1)), max(0.0, min(width, x2))))
        y1, y2 = sorted((max(0.0, min(height, y1)), max(0.0, min(height, y2))))
        out.append([(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height])
    return out


class Sam3Network:
    """The detector (``Sam3Model``), the point tracker (``Sam3TrackerModel``, sharing the
    detector's image backbone) and, for a full ``sam3_video`` checkpoint, the video model."""

    def __init__(self, path: Path, device: str, text_cache_size: int = 256, prompt_batch: int = 0):
        import torch
        from transformers import AutoConfig, Sam3Model, Sam3Processor

        self.path = Path(path)
        self.device = device
        self._torch = torch
        config = AutoConfig.from_pretrained(self.path)
        self.kind = config.model_type
        self.video: Any = None
        self.video_processor: Any = None
        self.tracker: Any = None
        self.tracker_processor: Any = None
        if self.kind == "sam3_video":
            from transformers import Sam3VideoModel

            # transformers 5.23 reloads the tracker's feature sizes at their 1008-pixel defaults;
            # the image size setter recomputes every size from the detector's (a no-op at 1008)
            config.image_size = config.detector_config.image_size
            self.video = Sam3VideoModel.from_pretrained(self.path, config=config).to(device).eval()
            self.detector = self.video.detector_model
            self.tracker = self._tracker_from(self.video, config)
        elif self.kind == "sam3":
            self.detector = Sam3Model.from_pretrained(self.path).to(device).eval()
        else:
            raise ValueError(f"{self.path} holds a {self.kind!r} model, not SAM 3 (sam3_video or sam3)")
        self.processor = Sam3Processor.from_pretrained(self.path)
        if self.tracker is not None:
            from transformers import Sam3TrackerProcessor, Sam3VideoProcessor

            self.tracker_processor = Sam3TrackerProcessor.from_pretrained(self.path)
            self.video_processor = Sam3VideoProcessor.from_pretrained(self.path)
        stat = (self.path / "config.json").stat()
        self.key = (str(self.path), stat.st_mtime_ns, device)
        self.texts = LruCache(text_cache_size)
        # prompts per decoder pass: all of an image's at once on an accelerator; one at a time on
        # a CPU, where a batch of 5 took 1.4x as long as 5 passes of one (bench/sam3.py's model:
        # its activations at 144x144x256 per prompt leave the caches)
        self.prompt_batch = prompt_batch or (1 if device == "cpu" else 1 << 30)
        self.encoder_calls = 0
        self.detector_calls = 0  # decoder passes
        self.tracker_encoder_calls = 0

    def _tracker_from(self, video: Any, config: Any) -> Any:
        """The point tracker of a sam3_video checkpoint: its own prompt encoder, mask decoder
        and neck, and the detector's image backbone (the same module, not a copy)."""
        from transformers import Sam3TrackerModel

        tracker = Sam3TrackerModel(config)
        tracker.vision_encoder.backbone = video.detector_model.vision_encoder.backbone
        tracker.vision_encoder.neck.load_state_dict(video.tracker_neck.state_dict())
        missing, _ = tracker.load_state_dict(video.tracker_model.state_dict(), strict=False)
        left = [k for k in missing if not k.startswith("vision_encoder.")]
        if left:
            raise ValueError(f"the SAM 3 checkpoint at {self.path} lacks tracker weights: {left[:5]}")
        return tracker.to(self.device).eval()

    @property
    def name(self) -> str:
        return f"{self.path.name}@{self.image_size}"

    @property
    def image_size(self) -> int:
        return int(self.detector.config.vision_config.backbone_config.image_size)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        torch = self._torch
        with torch.inference_mode():
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    yield
            else:
                yield

    # -- concept detection ----------------------------------------------------------------
    def embed(self, image: np.ndarray) -> Embedding:
        """Run the detector's image encoder on an RGB HxWx3 uint8 array."""
        inputs = self.processor(images=image, return_tensors="pt")
        with self._inference():
            features = self.detector.get_vision_features(pixel_values=inputs["pixel_values"].to(self.device))
        self.encoder_calls += 1
        return Embedding(features, int(image.shape[0]), int(image.shape[1]))

    def encode_texts(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """(text features N x L x D, attention mask N x L) for the prompts, each encoded once
        per process and then taken from the cache."""
        torch = self._torch

        def encode(text: str) -> tuple[Any, Any]:
            tokens = self.processor(text=[text], return_tensors="pt")
            ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
            with self._inference():
                out = self.detector.get_text_features(input_ids=ids, attention_mask=mask, return_dict=True)
            return out.pooler_output, mask

        encoded = [self.texts.get_or_compute(text, lambda t=text: encode(t))[0] for text in texts]
        return torch.cat([f for f, _ in encoded]), torch.cat([m for _, m in encoded])

    def detect(
        self,
        embedding: Embedding,
        texts: Sequence[str],
        threshold: float,
        mask_threshold: float = 0.5,
        boxes: Sequence[Sequence[float]] | None = None,
        box_labels: Sequence[int] | None = None,
    ) -> list[list[Instance]]:
        """Every instance of each prompt (one list per text, best first) on one image, over its
        single encoding, ``prompt_batch`` prompts per decoder pass. ``boxes`` (pixel x1 y1 x2
        y2) are exemplars for every prompt, ``box_labels`` 1 (positive) or 0 (negative)."""
        step = self.prompt_batch
        return [
            found
            for start in range(0, len(texts), step)
            for found in self._detect_pass(
                embedding, texts[start : start + step], threshold, mask_threshold, boxes, box_labels
            )
        ]

    def _detect_pass(
        self,
        embedding: Embedding,
        texts: Sequence[str],
        threshold: float,
        mask_threshold: float,
        boxes: Sequence[Sequence[float]] | None,
        box_labels: Sequence[int] | None,
    ) -> list[list[Instance]]:
        """One batched decoder pass for ``texts`` (see detect)."""
        torch = self._torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        n = len(texts)
        features, attention = self.encode_texts(texts)
        vision = copy.copy(embedding.features)  # the cached encoding itself stays batch 1
        vision.fpn_hidden_states = tuple(t.expand(n, *t.shape[1:]) for t in embedding.features.fpn_hidden_states)
        vision.fpn_position_encoding = tuple(
            t.expand(n, *t.shape[1:]) for t in embedding.features.fpn_position_encoding
        )
        extra: dict[str, Any] = {}
        if boxes:
            norm = torch.tensor(_normalized_boxes(boxes, embedding.width, embedding.height), dtype=torch.float32)
            labels = torch.tensor(list(box_labels or [1] * len(boxes)), dtype=torch.long)
            extra = {
                "input_boxes": norm.unsqueeze(0).expand(n, -1, -1).to(self.device),
                "input_boxes_labels": labels.unsqueeze(0).expand(n, -1).to(self.device),
            }
        with self._inference():
            out = self.detector(
                vision_embeds=vision,
                text_embeds=BaseModelOutputWithPooling(pooler_output=features),
                attention_mask=attention,
                **extra,
            )
            found = self.processor.post_process_instance_segmentation(
                out,
                threshold=threshold,
                mask_threshold=mask_threshold,
                target_sizes=[(embedding.height, embedding.width)] * n,
            )
        self.detector_calls += 1
        results = []
        for item in found:
            scores = item["scores"].float().cpu().numpy()
            masks = item["masks"].cpu().numpy().astype(bool)
            boxes_px = item["boxes"].float().cpu().numpy()
            order = np.argsort(-scores, kind="stable")
            results.append([Instance(masks[i], tuple(float(v) for v in boxes_px[i]), float(scores[i])) for i in order])
        return results

    # -- point prompts ----------------------------------------------------------------------
    def embed_for_points(self, image: np.ndarray) -> Embedding:
        if self.tracker is None:
            raise TaskError(
                f"{self.path} is a detector-only SAM 3 checkpoint: clicks need the full facebook/sam3 "
                "checkpoint (sam3_video), which holds the point tracker"
            )
        inputs = self.tracker_processor(images=image, return_tensors="pt")
        with self._inference():
            features = self.tracker.get_image_embeddings(inputs["pixel_values"].to(self.device))
        self.tracker_encoder_calls += 1
        return Embedding(features, int(image.shape[0]), int(image.shape[1]))

    def segment_points(
        self,
        embedding: Embedding,
        points: Sequence[Sequence[float]],
        labels: Sequence[int],
        multimask: bool = True,
        box: Sequence[float] | None = None,
    ) -> tuple[np.ndarray, float]:
        """Clicks (pixel x, y; label 1 positive, 0 negative) and/or a box (pixel x1, y1, x2, y2)
        -> the best mask and its predicted IoU."""
        size = [[embedding.height, embedding.width]]
        prompt: dict[str, Any] = {}
        if points:
            prompt["input_points"] = [[[list(map(float, p)) for p in points]]]
            prompt["input_labels"] = [[list(map(int, labels))]]
        if box is not None:
            prompt["input_boxes"] = [[list(map(float, box))]]
        inputs = self.tracker_processor(original_sizes=size, return_tensors="pt", **prompt)
        tensors = {k: inputs[k].to(self.device) for k in ("input_points", "input_labels", "input_boxes") if k in inputs}
        with self._inference():
            out = self.tracker(image_embeddings=embedding.features, multimask_output=multimask, **tensors)
            scores = out.iou_scores[0, 0].float().cpu().numpy()
            best = int(np.argmax(scores))
            # only the kept mask is scaled up to the image (three of a 1280x720 image's size
            # cost more than the mask decoder on CPU)
            low = out.pred_masks[:, :, best : best + 1].float().cpu()
            mask = self.tracker_processor.post_process_masks(low, size)[0][0][0]
        return mask.numpy().astype(bool), float(scores[best])

    # -- video ------------------------------------------------------------------------------
    def track_texts(self, frames: list[np.ndarray], texts: Sequence[str], max_objects: int) -> dict[int, dict]:
        """Objects of each prompt found and tracked through ``frames`` (see video.track_frames)."""
        from prelabel_sam3.video import track_frames

        return track_frames(self, frames, list(texts), max_objects)


_MODELS: OrderedDict[tuple, Sam3Network] = OrderedDict()
_MODELS_LOCK = threading.Lock()


def load_network(
    path: Path, device: str, text_cache_size: int = 256, keep: int = 2, prompt_batch: int = 0
) -> Sam3Network:
    """The process's SAM 3 for this directory, loaded on first use (the tests' many runtimes
    share it instead of loading it again)."""
    stat = (Path(path) / "config.json").stat()
    key = (str(path), stat.st_mtime_ns, device, text_cache_size, prompt_batch)
    with _MODELS_LOCK:
        network = _MODELS.get(key)
        if network is None:
            log.info("loading SAM 3 from %s on %s", path, device)
            network = _MODELS[key] = Sam3Network(Path(path), device, text_cache_size, prompt_batch)
            while len(_MODELS) > keep:
                _MODELS.popitem(last=False)
        _MODELS.move_to_end(key)
        return network
