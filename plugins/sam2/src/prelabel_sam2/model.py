"""SAM 2 loaded once per process, image embeddings cached per (image, model), and the calls
both the sam2 and grounding_sam backends make: points/box -> mask, boxes -> masks, video.

Requests never share predictor state: each call works on its own shallow copy of a
prototype ``SAM2ImagePredictor`` (the model and the input transforms are shared, read-only)
and on its own video inference state. torch and sam2 are imported inside functions.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prelabel_sam2.settings import ModelFiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Embedding:
    """One image's encoder output, as SAM2ImagePredictor keeps it after ``set_image``."""

    features: dict[str, Any]  # image_embed (1xCxhxw) and high_res_feats (two tensors)
    height: int
    width: int


def image_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """An RGB HxWx3 uint8 array of the image as the browser (and so Label Studio's canvas)
    shows it: core's decoder applies the EXIF orientation and checks the size first."""
    from prelabel import image_array

    return image_array(data, max_pixels=max_pixels)  # writable: torch refuses read-only arrays


def _memory_dtype_hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """sam2 stores video memories in bfloat16 and relies on CUDA autocast to mix them with
    float32 features; without autocast (CPU) cast the memory to the features' dtype."""
    curr, memory = kwargs.get("curr"), kwargs.get("memory")
    current = curr[0] if isinstance(curr, list) else curr
    if memory is not None and current is not None and memory.dtype != current.dtype:
        kwargs["memory"] = memory.to(current.dtype)
    return args, kwargs


class Sam2Model:
    """One SAM 2 network used for images and videos (the video predictor is a SAM2Base, so
    SAM2ImagePredictor runs on it too: one copy of the weights serves both)."""

    def __init__(self, files: ModelFiles, device: str, image_size: int | None = None):
        import torch
        from sam2.build_sam import build_sam2_video_predictor
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        overrides = [f"++model.image_size={image_size}"] if image_size else []
        self.files = files
        self.device = device
        self.net = build_sam2_video_predictor(
            files.config, str(files.checkpoint), device=device, hydra_overrides_extra=overrides
        )
        self.net.memory_attention.register_forward_pre_hook(_memory_dtype_hook, with_kwargs=True)
        self.image_size = int(self.net.image_size)
        self._proto = SAM2ImagePredictor(self.net)
        # sam2 1.1.0 hard-codes the feature map sizes of a 1024 input; derive them from ours
        s = self.image_size
        self._proto._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        self.key = (files.config, str(files.checkpoint), device, self.image_size)
        self._torch = torch
        self.encoder_calls = 0

    @property
    def name(self) -> str:
        return f"{Path(self.files.config).stem}@{self.image_size}"

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        torch = self._torch
        with torch.inference_mode():
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    yield
            else:
                yield

    def _predictor(self, embedding: Embedding | None = None) -> Any:
        """A predictor of this request's own; the model and transforms are shared read-only."""
        predictor = copy.copy(self._proto)
        predictor.reset_predictor()
        if embedding is not None:
            predictor._features = embedding.features
            predictor._orig_hw = [(embedding.height, embedding.width)]
            predictor._is_image_set = True
        return predictor

    # -- images -----------------------------------------------------------------------------
    def embed(self, image: np.ndarray) -> Embedding:
        """Run the image encoder on an RGB HxWx3 uint8 array."""
        predictor = self._predictor()
        with self._inference():
            predictor.set_image(image)
        self.encoder_calls += 1
        return Embedding(predictor._features, int(image.shape[0]), int(image.shape[1]))

    def embed_batch(self, images: list[np.ndarray]) -> list[Embedding]:
        """Encode several images in one forward pass on an accelerator, one after another on a
        CPU (4 images of 1280x720 in one pass took 15.2 s there, one at a time 11.2 s: the
        batch's activations leave the caches); one Embedding each."""
        if len(images) == 1 or self.device == "cpu":
            return [self.embed(image) for image in images]
        predictor = self._predictor()
        with self._inference():
            predictor.set_image_batch(images)
        self.encoder_calls += 1
        feats = predictor._features
        return [
            Embedding(
                {
                    "image_embed": feats["image_embed"][i : i + 1],
                    "high_res_feats": [f[i : i + 1] for f in feats["high_res_feats"]],
                },
                int(img.shape[0]),
                int(img.shape[1]),
            )
            for i, img in enumerate(images)
        ]

    def segment(
        self,
        embedding: Embedding,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask: bool = True,
    ) -> tuple[np.ndarray, float]:
        """Clicks (pixel x, y; label 1 positive, 0 negative) and/or a box (x1, y1, x2, y2) ->
        the best mask (H x W bool) and its predicted IoU."""
        predictor = self._predictor(embedding)
        with self._inference():
            masks, scores, _ = predictor.predict(
                point_coords=points, point_labels=labels, box=box, multimask_output=multimask
            )
        best = int(np.argmax(scores))
        return masks[best] > 0, float(scores[best])

    def segment_boxes(self, embedding: Embedding, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N x 4, pixel x1 y1 x2 y2) -> one mask each (N x H x W bool) and its predicted IoU."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, embedding.height, embedding.width), bool), np.zeros(0, np.float32)
        predictor = self._predictor(embedding)
        with self._inference():
            masks, scores, _ = predictor.predict(box=boxes, multimask_output=False)
        masks = masks.reshape(len(boxes), -1, embedding.height, embedding.width)[:, 0]
        return masks > 0, np.asarray(scores, np.float32).reshape(len(boxes), -1)[:, 0]

    # -- video ------------------------------------------------------------------------------
    def track(
        self, frames_dir: Path, prompts: dict[int, tuple[int, np.ndarray]], frames: int
    ) -> list[tuple[int, dict[int, np.ndarray]]]:
        """Propagate boxes through a folder of JPEG frames (``0.jpg``, ``1.jpg``...).

        ``prompts``: object id -> (frame index in the folder, box x1 y1 x2 y2 in pixels).
        Returns (frame index, {object id: H x W bool mask}) from the first prompted frame to
        ``frames`` frames after the last one. The inference state belongs to this call."""
        first = min(f for f, _ in prompts.values())
        last = max(f for f, _ in prompts.values())
        out = []
        with self._inference():
            state = self.net.init_state(video_path=str(frames_dir), offload_video_to_cpu=True)
            for obj_id, (frame_idx, box) in prompts.items():
                self.net.add_new_points_or_box(
                    state, frame_idx=frame_idx, obj_id=obj_id, box=np.asarray(box, dtype=np.float32)
                )
            for frame_idx, obj_ids, logits in self.net.propagate_in_video(
                state, start_frame_idx=first, max_frame_num_to_track=last + frames - first
            ):
                masks = (logits[:, 0] > 0).cpu().numpy()
                out.append((int(frame_idx), {int(o): masks[i] for i, o in enumerate(obj_ids)}))
        return out

    def follow(
        self,
        frames_dir: Path,
        count: int,
        prompt: int,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        passes: list[tuple[bool, int]],
        cancelled: Callable[[], bool],
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Follow one object, prompted on frame ``prompt`` of a folder of ``count`` JPEG frames,
        with SAM 2's video propagation: (frame index in the folder, H x W bool mask) as each
        frame is done. ``passes`` are (reverse, frames) propagations from the prompt frame on
        one inference state (a later pass does not repeat the prompt frame); a pass ends where
        the mask is empty (the object is lost) or when ``cancelled()``. Frames are read from
        disk as the propagation reaches them, so memory does not grow with the track's length."""
        import shutil

        head = frames_dir / "head"
        head.mkdir(exist_ok=True)
        shutil.copyfile(frames_dir / f"{prompt}.jpg", head / "0.jpg")
        with self._inference():
            state = self.net.init_state(video_path=str(head), offload_video_to_cpu=True)
            # init_state decodes every frame of its folder at the model's size; give it the prompt
            # frame only (its features become the cache of index 0), then the frames on demand
            state["images"] = FrameFolder(frames_dir, count, self.image_size)
            state["num_frames"] = count
            state["cached_features"] = {prompt: state["cached_features"][0]}
            self.net.add_new_points_or_box(state, frame_idx=prompt, obj_id=1, points=points, labels=labels, box=box)
        try:
            for n, (reverse, frames) in enumerate(passes):
                steps = self.net.propagate_in_video(
                    state, start_frame_idx=prompt, max_frame_num_to_track=frames, reverse=reverse
                )
                try:
                    while not cancelled():
                        with self._inference():
                            step = next(steps, None)
                        if step is None:
                            break
                        frame_idx, _, logits = step
                        mask = (logits[0, 0] > 0).cpu().numpy()
                        if not mask.any():
                            break  # lost: this direction ends at the last frame the object was seen
                        if n > 0 and frame_idx == prompt:
                            continue  # the first pass sent the prompt frame
                        yield int(frame_idx), mask
                finally:
                    steps.close()
        finally:
            state.clear()  # the frames' features and memories go now, not with the next collection


class FrameFolder:
    """The frames of a folder (``0.jpg``...) as sam2's video predictor reads its ``images``
    (index -> normalised 3 x S x S float tensor), loaded when asked for; the last two are kept."""

    MEAN = (0.485, 0.456, 0.406)  # sam2's load_video_frames defaults (ImageNet statistics)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, folder: Path, count: int, image_size: int):
        self.folder = folder
        self.count = count
        self.image_size = image_size
        self._recent: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        import torch
        from PIL import Image

        if index in self._recent:
            return self._recent[index]
        with Image.open(self.folder / f"{index}.jpg") as image:
            rgb = np.asarray(image.convert("RGB").resize((self.image_size, self.image_size)), dtype=np.float32)
        tensor = torch.from_numpy(rgb / 255.0).permute(2, 0, 1)
        tensor = (tensor - torch.tensor(self.MEAN).view(3, 1, 1)) / torch.tensor(self.STD).view(3, 1, 1)
        self._recent[index] = tensor
        while len(self._recent) > 2:
            self._recent.popitem(last=False)
        return tensor


_MODELS: OrderedDict[tuple, Sam2Model] = OrderedDict()
_MODELS_LOCK = threading.Lock()


def load_model(files: ModelFiles, device: str, image_size: int | None = None, keep: int = 2) -> Sam2Model:
    """The process's model for these files, loaded on first use (the sam2 and grounding_sam
    backends, and the tests' many runtimes, share it instead of loading it again)."""
    stat = files.checkpoint.stat()
    key = (files.config, str(files.checkpoint), stat.st_mtime_ns, stat.st_size, device, image_size)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            log.info("loading SAM 2 %s from %s on %s", files.config, files.checkpoint, device)
            model = _MODELS[key] = Sam2Model(files, device, image_size)
            while len(_MODELS) > keep:
                _MODELS.popitem(last=False)
        _MODELS.move_to_end(key)
        return model
