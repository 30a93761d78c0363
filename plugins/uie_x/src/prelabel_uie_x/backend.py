"""The uie_x backend: spans on text and boxes on document images with PaddleNLP UIE / UIE-X,
fine-tuned from the project's annotations."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from prelabel import Backend, JobContext, PredictContext, Prediction, Task, TaskError
from prelabel_uie_x import results
from prelabel_uie_x.engine import ENGINES, UieEngine, load_engine, png_base64, prepare_paddle, select_device
from prelabel_uie_x.ocr import OcrEngine, Segment, layout
from prelabel_uie_x.settings import UieSettings


class UieBackend(Backend):
    backend_id = "uie_x"
    title = "PaddleNLP UIE / UIE-X"
    description = (
        "Universal information extraction: Labels spans on Text and RectangleLabels boxes (with a "
        "per-region TextArea transcription) on document images, prompted with the project's labels; "
        "fine-tunes on the project's annotations. POST /v1/extract serves it outside Label Studio."
    )
    supports = {"Labels": frozenset({"Text"}), "RectangleLabels": frozenset({"Image"})}
    max_batch_size = 8
    trainable = True
    default_port = 9094
    version = "base"
    Settings = UieSettings
    # imported first in the setup thread, paddle crashed a later training job's thread
    # (a segfault inside libpaddle.so right after loading the base weights)
    main_thread_imports = ("paddle",)

    def __init__(self, settings: UieSettings | None = None, core: Any = None):
        super().__init__(settings, core)
        self.ocr = OcrEngine(self.settings.uie_ocr_min_score, self.settings.uie_ocr_side_len)
        self.device = "cpu"

    @classmethod
    def preflight(cls, settings: UieSettings, core: Any) -> None:
        path = settings.uie_task_path
        if path is not None and not (Path(path) / "model_state.pdparams").is_file():
            raise ValueError(f"UIE_TASK_PATH={path} has no model_state.pdparams: point it at a UIE model directory")

    def model_version(self) -> str:
        name = Path(self.settings.uie_task_path).name if self.settings.uie_task_path else self.settings.uie_model
        return f"{self.backend_id}-{name}"

    @property
    def cpu_threads(self) -> int | None:
        """Paddle Inference threads when on the CPU: UIE_CPU_THREADS, else every core."""
        if self.device != "cpu":
            return None
        return self.settings.uie_cpu_threads or os.cpu_count() or 1

    def health(self) -> dict[str, Any]:
        return {
            "model": str(self.settings.uie_task_path or self.settings.uie_model),
            "device": self.device,
            "cpu_threads": self.cpu_threads,
        }

    # -- loading ----------------------------------------------------------------------------
    def setup(self, device: str | None) -> None:
        # paddle, not torch: UIE_DEVICE picks the device (core's ``device`` is None here)
        home = self.core.prelabel_home
        prepare_paddle(Path(self.settings.ppnlp_home or home / "paddlenlp"), home / "cache")
        self.device = select_device(self.settings.uie_device)
        ENGINES.size = self.settings.uie_cache_models
        self.engine(None)
        self.ocr.warm_up()

    def _base_path(self) -> Path | None:
        """UIE_TASK_PATH, copied under PRELABEL_HOME when it is read-only: Taskflow writes its
        exported inference model (static/) into the model directory."""
        path = self.settings.uie_task_path
        if path is None or os.access(path, os.W_OK):
            return path
        copy = self.core.prelabel_home / "uie_x" / "task_path"
        if not (copy / "model_state.pdparams").is_file():
            shutil.copytree(path, copy, dirs_exist_ok=True)
        return copy

    def engine(self, model_dir: Path | None) -> UieEngine:
        """The loaded model for a trained version's directory, or the base model (None)."""
        s = self.settings

        def load() -> UieEngine:
            return load_engine(
                s.uie_model,
                model_dir or self._base_path(),
                self.device,
                s.uie_max_seq_len,
                s.uie_batch_size,
                s.uie_position_prob,
                self.cpu_threads,
            )

        key = (
            str(model_dir or self._base_path() or s.uie_model),
            s.uie_model,
            self.device,
            s.uie_max_seq_len,
            s.uie_batch_size,
            s.uie_position_prob,
            self.cpu_threads,
        )
        return ENGINES.get(repr(key), load)

    # -- extraction -------------------------------------------------------------------------
    def read_document(self, image: Any) -> tuple[list[Segment], dict | None]:
        """OCR lines of a page and Taskflow's document input (None when the page has no text)."""
        segments = self.ocr(image)
        return segments, ({"doc": png_base64(image), "layout": layout(segments)} if segments else None)

    def predict(self, tasks: list[Task], ctx: PredictContext) -> list[Any]:
        engine = self.engine(ctx.model_dir)
        outputs: list[list | TaskError] = [[] for _ in tasks]
        for control in self.supported_controls(ctx.config):
            prompts = list(results.prompts_for(control))
            threshold = results.threshold_of(control, self.settings.uie_score_threshold)
            key = control.object.data_key
            if control.tag == "Labels":
                texts = [str(task.data.get(key) or "") for task in tasks]
                found = engine.extract([t for t in texts if t], prompts)
                it = iter(found)
                for i, text in enumerate(texts):
                    if text and not isinstance(outputs[i], TaskError):
                        outputs[i] += results.text_regions(control, text, next(it), threshold)
                continue
            textarea = results.region_textarea(ctx.config, control)
            for i, task in enumerate(tasks):
                if isinstance(outputs[i], TaskError):
                    continue
                try:
                    image = ctx.media.open_image(task.data[key], task.id)
                except TaskError as exc:
                    outputs[i] = exc
                    continue
                segments, doc = self.read_document(image)
                if doc is not None:
                    found = engine.extract([doc], prompts)[0]
                    outputs[i] += results.document_regions(
                        control, textarea, found, segments, image.width, image.height, threshold
                    )
        return [out if isinstance(out, TaskError) else Prediction(out) for out in outputs]

    # -- training ---------------------------------------------------------------------------
    def fit(self, job: JobContext) -> dict[str, Any]:
        from prelabel_uie_x.finetune import run_finetune

        return run_finetune(self, job)

    # -- direct use -------------------------------------------------------------------------
    def add_routes(self, router: Any, ctx: Any) -> None:
        from prelabel_uie_x.extract import add_extract_route

        add_extract_route(router, self, ctx)
