"""The grounding_sam backend's environment variables: Grounding DINO's, plus sam2's for the masks."""

from __future__ import annotations

import re
from pathlib import Path

from prelabel_sam2 import Sam2Settings
from pydantic import AliasChoices, Field

from prelabel import CoreSettings, resolve_under

DEFAULT_DINO = "IDEA-Research/grounding-dino-tiny"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class GroundingSamSettings(Sam2Settings):
    """GROUNDING_DINO_MODEL, USE_SAM, BOX_THRESHOLD, TEXT_THRESHOLD, GROUNDING_* and, for the
    masks, sam2's MODEL_CONFIG, MODEL_CHECKPOINT, MODEL_ROOT, DEVICE, SAM2_* (see README)."""

    grounding_dino_model: str = Field(
        DEFAULT_DINO,
        description="A Hugging Face model id, or a directory (absolute, or relative to MODEL_ROOT) "
        "holding a saved GroundingDinoForObjectDetection and its processor.",
    )
    use_sam: bool = Field(True, description="SAM 2 masks for the detected boxes (BrushLabels/PolygonLabels).")
    box_threshold: float = Field(0.3, ge=0, le=1, description="Least box confidence kept.")
    text_threshold: float = Field(0.25, ge=0, le=1, description="Least confidence of the phrase a box is given.")
    # core reads max_batch_size (Backend.limits); GROUNDING_MAX_BATCH_SIZE is its environment name
    max_batch_size: int = Field(
        4,
        ge=1,
        validation_alias=AliasChoices("grounding_max_batch_size", "max_batch_size"),
        description="Images per predict call (GROUNDING_MAX_BATCH_SIZE); GROUNDING_IMAGES_PER_PASS splits it.",
    )
    grounding_images_per_pass: int = Field(
        0,
        ge=0,
        description="Images per Grounding DINO and SAM 2 encoder pass within a call; 0: all of them on a GPU, "
        "one at a time on a CPU (faster there).",
    )
    # sam2's SAM2_MAX_CONCURRENCY is not this backend's: one request at a time unless MAX_CONCURRENCY says
    max_concurrency: int | None = Field(None, ge=1, description="Requests predicted at once per process.")
    grounding_max_detections: int = Field(100, ge=1, description="Most regions per image and control.")
    grounding_nms_iou: float = Field(
        0.7, gt=0, le=1, description="Boxes of one label overlapping more than this are merged (1: off)."
    )


def dino_source(settings: GroundingSamSettings, core: CoreSettings) -> str:
    """A local directory (absolute, or under MODEL_ROOT) when there is one, else a hub id."""
    raw = settings.grounding_dino_model.strip()
    path = Path(raw).expanduser()
    if path.is_absolute():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"GROUNDING_DINO_MODEL={raw}: no config.json there; save the model with "
                "save_pretrained() (and its processor) into that directory, or give a model id"
            )
        return str(path)
    root = settings.checkpoint_root(core)
    try:
        local = resolve_under(root, raw, "GROUNDING_DINO_MODEL")
    except ValueError:
        local = None
    if local is not None and (local / "config.json").is_file():
        return str(local)
    if _HUB_ID.match(raw):
        return raw  # downloaded into the Hugging Face cache on first start
    raise ValueError(
        f"GROUNDING_DINO_MODEL={raw!r} is neither a directory with config.json (absolute, or under "
        f"MODEL_ROOT {root}) nor a Hugging Face model id such as {DEFAULT_DINO}"
    )
