"""Test support: a tiny random-weight SAM 3 saved like the real one, built offline.

The real weights (facebook/sam3) are one ``sam3_video`` checkpoint: the concept detector
(``Sam3Model``), the point tracker and the video tracker, with a CLIP tokenizer. This writes
the same layout from small configs, with a CLIP tokenizer whose vocabulary is the 512
byte-level symbols (every text tokenizes, one symbol per character) plus CLIP's own
``<|startoftext|>`` = 49406 and ``<|endoftext|>`` = 49407, the ids the text encoder expects.
It loads through the plugin's real path (``from_pretrained`` of that directory). Used by this
plugin's tests and bench/sam3.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CLIP_VOCAB_SIZE = 49408
# the video tracker reads memories of 64 channels (hard-coded in transformers) and splits wider object
# pointers into 64-channel tokens, the only path that works: so a width of 128
HIDDEN = 128
BOS, EOS = 49406, 49407


def byte_level_vocab() -> dict[str, int]:
    """GPT-2's byte-to-unicode symbols, alone and with CLIP's end-of-word ``</w>``."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = list(keep)
    extra = 0
    for byte in range(256):
        if byte not in keep:
            symbols.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in symbols]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": BOS, "<|endoftext|>": EOS})
    return vocab


def tiny_configs(image_size: int = 112, queries: int = 20) -> dict:
    """Keyword arguments of a small ``Sam3VideoConfig`` (detector and tracker), random weights."""
    from transformers import Sam3Config, Sam3TrackerVideoConfig, Sam3VisionConfig, Sam3ViTConfig

    patch = 14
    grid = image_size // patch
    sizes = [[grid * 4, grid * 4], [grid * 2, grid * 2], [grid, grid]]

    def vision() -> Sam3VisionConfig:
        vit = Sam3ViTConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
            window_size=4,
            global_attn_indexes=[1],
            pretrain_image_size=image_size,
        )
        return Sam3VisionConfig(backbone_config=vit, fpn_hidden_size=HIDDEN, backbone_feature_sizes=sizes)

    small = {"hidden_size": HIDDEN, "num_attention_heads": 2, "intermediate_size": 64}
    detector = Sam3Config(
        vision_config=vision(),
        text_config={
            "vocab_size": CLIP_VOCAB_SIZE,
            "hidden_size": 32,
            "intermediate_size": 64,
            "projection_dim": HIDDEN,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "bos_token_id": BOS,
            "eos_token_id": EOS,
            "pad_token_id": EOS,
        },
        geometry_encoder_config={**small, "num_layers": 1},
        detr_encoder_config={**small, "num_layers": 1},
        detr_decoder_config={**small, "num_layers": 1, "num_queries": queries},
        mask_decoder_config={"hidden_size": HIDDEN, "num_attention_heads": 2},
    )
    tracker = Sam3TrackerVideoConfig(
        vision_config=vision(),
        prompt_encoder_config={"hidden_size": HIDDEN, "image_size": image_size, "patch_size": patch},
        mask_decoder_config={"hidden_size": HIDDEN, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
        memory_attention_hidden_size=HIDDEN,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[grid, grid],
        memory_encoder_hidden_size=HIDDEN,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=HIDDEN,
        memory_fuser_embed_dim=HIDDEN,
        memory_fuser_intermediate_dim=64,
        max_object_pointers_in_encoder=4,
    )
    tracker.vision_config.backbone_feature_sizes = sizes  # the tracker config's default (288...) wins otherwise
    return {"detector_config": detector, "tracker_config": tracker}


def save_sam3(path: Path, config: Any, seed: int = 0) -> Path:
    """Save a randomly initialised ``Sam3VideoModel`` of ``config`` (a ``Sam3VideoConfig``) with
    its processor (image and video processors at the config's image size, the offline CLIP
    tokenizer) into ``path``, laid out as the real checkpoint directory."""
    import torch
    from transformers import CLIPTokenizer, Sam3ImageProcessor, Sam3VideoModel, Sam3VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    Sam3VideoModel(config).eval().save_pretrained(path)
    image_size = int(config.image_size)
    size = {"height": image_size, "width": image_size}
    patch = config.detector_config.vision_config.backbone_config.patch_size
    mask = image_size // patch * 4
    processor = Sam3VideoProcessor(
        image_processor=Sam3ImageProcessor(size=size, mask_size={"height": mask, "width": mask}),
        video_processor=Sam2VideoVideoProcessor(size=size),
        tokenizer=CLIPTokenizer(vocab=byte_level_vocab(), merges=[]),
    )
    processor.save_pretrained(path)
    return path


def write_tiny_sam3(path: Path, seed: int = 0, image_size: int = 112, queries: int = 8) -> Path:
    """Save a randomly initialised, tiny SAM 3 (``Sam3VideoModel``: detector, trackers) with its
    processor into ``path`` (see ``save_sam3``)."""
    from transformers import Sam3VideoConfig

    # random weights score every object about 0.25: the video model's own thresholds (0.5 to keep a
    # detection, 0.7 to start a track, 15 frames of hot start) would keep nothing
    config = Sam3VideoConfig(
        **tiny_configs(image_size, queries),
        score_threshold_detection=0.1,
        new_det_thresh=0.1,
        hotstart_delay=0,
        hotstart_unmatch_thresh=0,
        hotstart_dup_thresh=0,
    )
    return save_sam3(path, config, seed)
