"""Fine-tuning UIE / UIE-X with our own loop, and span precision/recall/F1 with our own loop.

(paddlenlp 3.0.0b4's ``Trainer.evaluate`` hands compute_metrics only the start labels, so
neither its Trainer nor its metrics are used.) The ResNet image backbone of UIE-X is frozen
by default and run once per page, which makes CPU fine-tuning practical.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prelabel_uie_x.features import Feature, collate, encode_example, image_tensor


@dataclass
class TrainConfig:
    epochs: int
    max_steps: int
    learning_rate: float
    batch_size: int
    max_seq_len: int
    position_prob: float
    train_visual: bool
    seed: int
    device: str


def _model_classes() -> dict[str, Any]:
    from paddlenlp.transformers import UIE, UIEM, UIEX

    return {"UIE": UIE, "UIEM": UIEM, "UIEX": UIEX}


def encode_all(examples: list[dict], tokenizer: Any, family: str, max_seq_len: int) -> tuple[list[Feature], int]:
    """Features of every example, and how many examples could not be encoded."""
    features, skipped = [], 0
    for example in examples:
        encoded = encode_example(example, tokenizer, family, max_seq_len)
        skipped += not encoded
        features.extend(encoded)
    return features, skipped


def _fixed_visual() -> Any:
    """A layer that stands in for UIE-X's frozen image backbone: it returns the features the
    training loop precomputed for the batch's pages (set in ``features`` before each call)."""
    import paddle

    class FixedVisual(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.features = None

        def forward(self, images: Any) -> Any:
            return self.features

    return FixedVisual()


class Trainer:
    """One fine-tuning run from ``base_dir`` (a UIE model directory) into ``out_dir``."""

    def __init__(self, base_dir: Path, family: str, config: TrainConfig, images: dict[str, Any]):
        import paddle
        from paddlenlp.transformers import AutoTokenizer

        paddle.set_device(config.device)
        paddle.seed(config.seed)
        self.paddle = paddle
        self.family = family
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
        self.model = _model_classes()[family].from_pretrained(str(base_dir))
        self.images = images  # image key -> PIL image of the page
        self._pixels: dict[str | None, Any] = {}
        self._visual_features: dict[str | None, Any] = {}
        self._backbone: Any = None
        self._fixed: Any = None
        if family == "UIEX" and not config.train_visual:
            # frozen backbone: run it once per page, in eval mode, outside the trained graph
            self._backbone = self.model.ernie_layout.visual
            self._backbone.eval()
            self._fixed = _fixed_visual()
            self.model.ernie_layout.visual = self._fixed

    # -- inputs -----------------------------------------------------------------------------
    def _page(self, key: str | None) -> Any:
        import numpy as np

        if key not in self._pixels:
            self._pixels[key] = (image_tensor(self.images[key]) if key is not None else np.zeros([3, 224, 224])).astype(
                "float32"
            )
        return self._pixels[key]

    def _inputs(self, batch: list[Feature]) -> dict[str, Any]:
        import numpy as np

        paddle = self.paddle
        arrays = collate(batch, self.family)
        inputs = {
            k: paddle.to_tensor(arrays[k]) for k in ("input_ids", "token_type_ids", "position_ids", "attention_mask")
        }
        if self.family == "UIEX":
            inputs["bbox"] = paddle.to_tensor(arrays["bbox"])
            if self._fixed is not None:
                self._fixed.features = paddle.to_tensor(np.stack([self._visual_of(f.image) for f in batch]))
                inputs["image"] = paddle.zeros([len(batch), 1, 1, 1])
            else:
                inputs["image"] = paddle.to_tensor(np.stack([self._page(f.image) for f in batch]))
        return {
            **inputs,
            "start_labels": paddle.to_tensor(arrays["start_labels"]),
            "end_labels": paddle.to_tensor(arrays["end_labels"]),
        }

    def _visual_of(self, key: str | None) -> Any:
        if key not in self._visual_features:
            with self.paddle.no_grad():
                pixels = self.paddle.to_tensor(self._page(key)[None])
                self._visual_features[key] = self._backbone(pixels)[0].numpy()
        return self._visual_features[key]

    def _forward(self, inputs: dict[str, Any]) -> tuple[Any, Any]:
        args = {k: v for k, v in inputs.items() if not k.endswith("_labels")}
        return self.model(**args)

    # -- training ---------------------------------------------------------------------------
    def train(self, features: list[Feature], progress: Callable[[float, str], None]) -> dict[str, Any]:
        paddle, cfg = self.paddle, self.config
        per_epoch = max(1, -(-len(features) // cfg.batch_size))
        total = min(cfg.epochs * per_epoch, cfg.max_steps) if cfg.max_steps else cfg.epochs * per_epoch
        # linear decay to zero, the default schedule of PaddleNLP's Trainer
        schedule = paddle.optimizer.lr.LambdaDecay(cfg.learning_rate, lambda step: max(0.0, 1 - step / total))
        params = [p for p in self.model.parameters() if not p.stop_gradient]
        optimizer = paddle.optimizer.AdamW(learning_rate=schedule, parameters=params)
        rng = random.Random(cfg.seed)
        step, losses, started = 0, [], time.monotonic()
        self.model.train()
        while step < total:
            order = list(range(len(features)))
            rng.shuffle(order)
            for lo in range(0, len(order), cfg.batch_size):
                if step >= total:
                    break
                inputs = self._inputs([features[i] for i in order[lo : lo + cfg.batch_size]])
                start_prob, end_prob = self._forward(inputs)
                mask = inputs["attention_mask"].astype("float32")
                loss = (
                    self._bce(start_prob, inputs["start_labels"], mask)
                    + self._bce(end_prob, inputs["end_labels"], mask)
                ) / 2
                loss.backward()
                optimizer.step()
                optimizer.clear_grad()
                schedule.step()
                losses.append(float(loss))
                step += 1
                if step % 10 == 0 or step == total:
                    progress(step / total, f"step {step}/{total}, loss {sum(losses[-10:]) / len(losses[-10:]):.4f}")
        self.model.eval()
        return {
            "steps": step,
            "train_loss": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 6),
            "train_seconds": round(time.monotonic() - started, 2),
        }

    def _bce(self, prob: Any, label: Any, mask: Any) -> Any:
        loss = self.paddle.nn.functional.binary_cross_entropy(prob.clip(1e-7, 1 - 1e-7), label, reduction="none")
        return (loss * mask).sum() / mask.sum()

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, features: list[Feature]) -> dict[str, Any]:
        """Span-level precision, recall and F1: a predicted span counts when its start and end
        tokens both match a labelled span (decoded as Taskflow decodes them)."""
        from paddlenlp.utils.tools import get_bool_ids_greater_than, get_span

        correct = predicted = gold = 0
        limit = self.config.position_prob
        with self.paddle.no_grad():
            for lo in range(0, len(features), self.config.batch_size):
                batch = features[lo : lo + self.config.batch_size]
                inputs = self._inputs(batch)
                start_prob, end_prob = self._forward(inputs)
                starts = get_bool_ids_greater_than(start_prob.numpy().tolist(), limit=limit)
                ends = get_bool_ids_greater_than(end_prob.numpy().tolist(), limit=limit)
                for feature, s, e in zip(batch, starts, ends, strict=True):
                    content = {i for i, o in enumerate(feature.offsets) if o is not None}
                    spans = {(a, b) for a, b in get_span(s, e) if a in content and b in content}
                    predicted += len(spans)
                    gold += len(feature.gold)
                    correct += len(spans & feature.gold)
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "gold_spans": gold,
            "predicted_spans": predicted,
        }

    def save(self, out_dir: Path) -> None:
        """model_state.pdparams, config.json and the tokenizer files Taskflow needs."""
        if self._fixed is not None:
            self.model.ernie_layout.visual = self._backbone  # the saved weights keep their names
            self._fixed = None
        self.model.save_pretrained(str(out_dir))
        self.tokenizer.save_pretrained(str(out_dir))
