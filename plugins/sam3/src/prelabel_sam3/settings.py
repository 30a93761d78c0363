"""The sam3 backend's environment variables, and where the SAM 3 weights are.

Nothing here imports torch or transformers: ``preflight`` runs these checks before anything loads.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pydantic import AliasChoices, Field

from prelabel import BackendSettings, CoreSettings, resolve_under

HUB_REPO = "facebook/sam3"
LICENSE = "Meta's SAM License (https://huggingface.co/facebook/sam3/blob/main/LICENSE)"
INSTALL = 'pip install "transformers>=5.23" torch'


class Sam3Settings(BackendSettings):
    """SAM3_MODEL, MODEL_ROOT, DEVICE and the SAM3_* variables (see README)."""

    sam3_model: str = Field(
        "sam3",
        description="Directory of SAM 3 weights in transformers' format (config.json, model.safetensors, "
        "the processor files): absolute, or relative to MODEL_ROOT.",
    )
    model_root: Path | None = Field(None, description="Directory of model folders. Default: $PRELABEL_HOME/weights.")
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda, cuda:1, mps.")
    sam3_score_threshold: float = Field(
        0.5, ge=0, le=1, description="Least instance score kept (a control's model_score_threshold wins)."
    )
    sam3_mask_threshold: float = Field(0.5, ge=0, le=1, description="Mask probability above which a pixel is in.")
    sam3_overlap_iou: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Two instances of different labels whose masks overlap more than this are one "
        "object: the best-scoring label keeps it.",
    )
    sam3_max_instances: int = Field(100, ge=1, description="Most regions per image and control.")
    sam3_embedding_cache_size: int = Field(
        8, ge=0, description="Image embeddings kept per process for repeated interactions; 0 turns the cache off."
    )
    sam3_text_cache_size: int = Field(256, ge=0, description="Encoded label prompts kept per process.")
    sam3_prompt_batch: int = Field(
        0,
        ge=0,
        description="Label prompts per decoder pass over an image's one encoding; 0: all at once on a GPU, "
        "one at a time on a CPU (faster there).",
    )
    sam3_polygon_tolerance: float = Field(
        1.5, ge=0, description="PolygonLabels: largest distance in pixels between the mask outline and the polygon."
    )
    # core reads max_concurrency (Backend.limits); SAM3_MAX_CONCURRENCY is its environment name
    max_concurrency: int = Field(
        2,
        ge=1,
        validation_alias=AliasChoices("sam3_max_concurrency", "max_concurrency"),
        description="Requests predicted at once per process (SAM3_MAX_CONCURRENCY).",
    )
    max_frames_to_track: int = Field(10, ge=1, description="Video: frames tracked after the first one.")
    sam3_track_max_frames: int = Field(
        300, ge=1, description="SAM events: most frames one track event follows the object through."
    )
    sam3_video_max_objects: int = Field(16, ge=1, description="Video: most objects tracked at once.")
    sam3_video_max_pixels: int = Field(
        1280 * 720, ge=1, description="Video: frames larger than this are refused (memory grows with frames x pixels)."
    )

    def weights_root(self, core: CoreSettings) -> Path:
        return Path(self.model_root) if self.model_root else core.prelabel_home / "weights"


def model_dir(settings: Sam3Settings, core: CoreSettings) -> Path:
    """SAM3_MODEL resolved: an absolute path as given, a relative one under MODEL_ROOT."""
    raw = settings.sam3_model.strip()
    path = Path(raw).expanduser()
    if path.is_absolute():
        return path
    return resolve_under(settings.weights_root(core), raw, "SAM3_MODEL")


def check_installed() -> None:
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
        raise ValueError(f"SAM 3 needs torch and transformers 5.23 or later: {INSTALL}")


def check_model_dir(settings: Sam3Settings, core: CoreSettings) -> Path:
    """The weights directory, or ValueError saying where to get the weights and under what license."""
    path = model_dir(settings, core)
    if not (path / "config.json").is_file():
        raise ValueError(
            f"no SAM 3 weights at {path} (SAM3_MODEL={settings.sam3_model!r}: no config.json there). The weights "
            f"are gated on the Hugging Face hub under {LICENSE}: request access at https://huggingface.co/{HUB_REPO}, "
            f"then download them with `hf download {HUB_REPO} --local-dir {path}`, or set SAM3_MODEL to the "
            "directory holding them (absolute, or relative to MODEL_ROOT)"
        )
    return path
