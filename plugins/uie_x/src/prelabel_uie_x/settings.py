"""The uie_x backend's environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from prelabel import BackendSettings


class UieSettings(BackendSettings):
    """UIE_MODEL, UIE_TASK_PATH, PPNLP_HOME and the other UIE_* variables (see the plugin README)."""

    uie_model: str = Field(
        "uie-x-base",
        description="PaddleNLP Taskflow model name (uie-base, uie-m-base, uie-x-base...), "
        "downloaded into PPNLP_HOME on first use; ignored for its weights when "
        "UIE_TASK_PATH is set.",
    )
    uie_task_path: Path | None = Field(
        None, description="A local UIE / UIE-M / UIE-X model directory (a PaddleNLP fine-tuning output)."
    )
    ppnlp_home: Path | None = Field(
        None, description="PaddleNLP's home (downloaded models). Default: $PRELABEL_HOME/paddlenlp."
    )
    uie_device: str = Field("auto", description="auto (first GPU when paddle has one, else cpu), cpu, gpu or gpu:N.")
    uie_max_seq_len: int = Field(512, ge=32, le=2048, description="Tokens per model window; longer texts are split.")
    uie_batch_size: int = Field(16, ge=1, description="Prompt/text pairs per model call.")
    uie_cpu_threads: int | None = Field(
        None,
        ge=1,
        description="Paddle Inference threads on the CPU. Default: every core (Taskflow alone "
        "would use half of them: one thread on 2 cores).",
    )
    uie_position_prob: float = Field(
        0.5, gt=0, lt=1, description="Start/end probability a span needs (Taskflow's position_prob)."
    )
    uie_score_threshold: float = Field(
        0.0, ge=0, le=1, description="Lowest span score returned when a control sets no model_score_threshold."
    )
    uie_ocr_min_score: float = Field(0.5, ge=0, le=1, description="Drop OCR lines recognised with a lower score.")
    uie_ocr_side_len: int = Field(
        736,
        ge=32,
        description="OCR text detection scales each page so its shorter side has this many pixels "
        "(rapidocr's det_limit_side_len); lower is faster, higher finds smaller text.",
    )
    uie_cache_models: int = Field(2, ge=1, description="Models (base + trained versions) kept loaded per process.")
    uie_allowed_root: Path | None = Field(
        None,
        description="POST /v1/extract may read images from local paths under this directory; unset: no local paths.",
    )
    # -- fine-tuning ----------------------------------------------------------------------
    uie_epochs: int = Field(10, ge=1, description="Training epochs over the converted examples.")
    uie_max_steps: int = Field(0, ge=0, description="Stop after this many optimizer steps (0: epochs decide).")
    uie_learning_rate: float = Field(1e-5, gt=0, description="AdamW learning rate.")
    uie_train_batch_size: int = Field(8, ge=1, description="Examples per optimizer step.")
    uie_val_split: float = Field(0.2, ge=0, lt=1, description="Share of annotated tasks held out for P/R/F1.")
    uie_min_tasks: int = Field(2, ge=1, description="Fewest usable annotated tasks worth training on.")
    uie_train_visual: bool = Field(
        False,
        description="UIE-X: also fine-tune the ResNet image backbone (slow on CPU); by default it is "
        "frozen and its features are computed once per image.",
    )
    uie_seed: int = Field(0, description="Seed of the train/validation split and of training.")
