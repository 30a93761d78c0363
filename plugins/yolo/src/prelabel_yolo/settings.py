"""The yolo backend's environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from prelabel import BackendSettings


class YoloSettings(BackendSettings):
    """MODEL_ROOT, DEVICE and the YOLO_* variables (see the plugin README)."""

    model_root: Path | None = Field(
        None,
        description="Directory of weights; model_path attributes are relative to it. Default: $PRELABEL_HOME/weights.",
    )
    yolo_download: bool = Field(
        True, description="Download default weights (yolo11n.pt...) missing from MODEL_ROOT on first use."
    )
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda, cuda:1, mps.")
    half: bool = Field(True, description="Half precision inference when the device is a GPU.")
    yolo_cpu_threads: int | None = Field(
        None,
        ge=1,
        description="torch threads for inference on the CPU. Default: every core "
        "(ultralytics alone would use one fewer, a single thread on 2 cores).",
    )
    # core reads max_batch_size (Backend.limits); YOLO_MAX_BATCH_SIZE is its environment name
    max_batch_size: int = Field(
        8,
        ge=1,
        validation_alias=AliasChoices("yolo_max_batch_size", "max_batch_size"),
        description="Images per model call (YOLO_MAX_BATCH_SIZE).",
    )
    yolo_imgsz: int = Field(640, ge=32, description="Inference and training image size.")
    yolo_score_threshold: float = Field(
        0.5, ge=0, le=1, description="Default minimum score when a control sets no model_score_threshold."
    )
    yolo_max_det: int = Field(300, ge=1, description="Most detections per image.")
    yolo_cache_models: int = Field(4, ge=1, description="Models kept loaded per process.")
    yolo_epochs: int = Field(30, ge=1, description="Training epochs.")
    yolo_train_batch: int = Field(8, ge=1, description="Training batch size.")
    yolo_val_split: float = Field(0.2, gt=0, lt=1, description="Share of annotated images held out for mAP50.")
    yolo_min_images: int = Field(2, ge=2, description="Fewest annotated images worth training on.")
    yolo_seed: int = Field(0, description="Seed of the train/validation split and of training.")
