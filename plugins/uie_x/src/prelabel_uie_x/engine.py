"""Loading PaddleNLP's Taskflow("information_extraction") once per model and running it.

Everything paddle-related is imported here, lazily, after ``prepare_paddle`` has pointed the
libraries' caches inside PRELABEL_HOME and switched off paddlenlp's usage ping.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("prelabel.backend.uie_x")

# config.json "architectures" -> the Taskflow model name whose tokenizer files that family needs
FAMILY_MODELS = {"UIE": "uie-base", "UIEM": "uie-m-base", "UIEX": "uie-x-base"}
_prepared = threading.Lock()
_state: dict[str, Any] = {}


@contextlib.contextmanager
def _home_redirected(home: Path) -> Iterator[None]:
    # paddle creates ~/.cache/paddle/dataset when it is first imported, reading $HOME at
    # that moment; point it inside PRELABEL_HOME for the import only.
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old


def prepare_paddle(ppnlp_home: Path, cache_root: Path) -> None:
    """Import paddle and paddlenlp with their caches under our directories. Idempotent.

    PPNLP_HOME is read by paddlenlp at import; onnxruntime (rapidocr) keeps a device id under
    XDG_CACHE_HOME; paddle writes converted model code to ~/.cache/paddle/to_static_tmp when
    Taskflow exports a model; paddlenlp's Taskflow pings paddlepaddle.org.cn on first use
    unless its DOWNLOAD_CHECK flags are set.
    """
    with _prepared:
        if _state.get("ready"):
            return
        ppnlp_home.mkdir(parents=True, exist_ok=True)
        cache_root.mkdir(parents=True, exist_ok=True)
        os.environ["PPNLP_HOME"] = str(ppnlp_home)
        os.environ.setdefault("XDG_CACHE_HOME", str(cache_root))
        os.environ.setdefault("HF_HOME", str(cache_root / "huggingface"))
        with _home_redirected(cache_root):
            import paddle  # noqa: F401
            import paddlenlp.taskflow.utils as taskflow_utils
            import paddlenlp.utils.downloader as downloader

        taskflow_utils.DOWNLOAD_CHECK = True  # no usage statistics request
        downloader.DOWNLOAD_CHECK = True
        _redirect_to_static_tmp(cache_root / "paddle" / "to_static_tmp")
        _state["ready"] = True


def _redirect_to_static_tmp(root: Path) -> None:
    from paddle.jit.dy2static import utils as dy2static_utils

    if not hasattr(dy2static_utils, "get_temp_dir"):  # another paddle version: nothing to redirect
        return

    def get_temp_dir() -> str:
        path = root / str(os.getpid())
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    dy2static_utils.get_temp_dir = get_temp_dir


def select_device(device: str) -> str:
    """``cpu`` or ``gpu:N`` for a UIE_DEVICE value (auto: the first GPU paddle can use)."""
    import paddle

    device = device.strip().lower()
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "auto":
        return "gpu:0" if has_gpu else "cpu"
    if device.startswith("gpu") and not has_gpu:
        raise ValueError(f"UIE_DEVICE={device} but this paddle build sees no GPU (install paddlepaddle-gpu)")
    if device == "gpu":
        return "gpu:0"
    if device == "cpu" or device.startswith("gpu:"):
        return device
    raise ValueError(f"UIE_DEVICE={device!r}: use auto, cpu, gpu or gpu:N")


def model_family(task_path: Path) -> str:
    """UIE, UIEM or UIEX, from a model directory's config.json."""
    for name in ("config.json", "model_config.json"):
        path = Path(task_path) / name
        if path.is_file():
            raw = json.loads(path.read_text())
            family = (raw.get("architectures") or [raw.get("init_class")])[-1]
            if family in FAMILY_MODELS:
                return family
            raise ValueError(f"{path}: architecture {family!r} is not a UIE model ({', '.join(FAMILY_MODELS)})")
    raise FileNotFoundError(f"{task_path} has no config.json: is it a PaddleNLP UIE model directory?")


def png_base64(image: Any) -> str:
    """A PIL image as base64 PNG for Taskflow's ``doc`` input.

    Taskflow treats a ``doc`` string shorter than 1024 characters as a path or URL (and would
    download it), so a tiny image is padded with a PNG text chunk to stay above that length."""
    from PIL.PngImagePlugin import PngInfo

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    if len(buf.getvalue()) < 800:
        meta = PngInfo()
        meta.add_text("padding", "-" * 800)
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=meta)
    return base64.b64encode(buf.getvalue()).decode()


@dataclass
class UieEngine:
    """One loaded Taskflow and the one thread that runs it. Paddle Inference on CPU uses
    oneDNN, whose caches belong to a thread: a predictor called from changing worker threads
    fails now and then (``RuntimeError: std::exception``), so it is created and always run on
    its own thread, which also serializes the calls."""

    taskflow: Any
    family: str
    task_path: Path
    thread: ThreadPoolExecutor

    def extract(self, inputs: list[str | dict], schema: list | dict) -> list[dict]:
        """Taskflow results for texts (str) or documents ({"doc": png_base64, "layout": [...]})."""
        if not inputs:
            return []
        return self.thread.submit(self._run, inputs, schema).result()

    def _run(self, inputs: list[str | dict], schema: list | dict) -> list[dict]:
        self.taskflow.set_schema(schema)
        return list(self.taskflow(inputs))

    def close(self) -> None:
        self.thread.shutdown(wait=False)


class EngineCache:
    """Loaded models by key, least recently used evicted. One per process (``ENGINES``): a
    model directory is loaded once however many backends or runtimes ask for it."""

    def __init__(self, size: int):
        self.size = size
        self._engines: OrderedDict[str, UieEngine] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, key: str, load: Any) -> UieEngine:
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per model, even when several requests ask at once
            with self._lock:
                if key in self._engines:
                    return self._engines[key]
            engine = load()
            with self._lock:
                self._engines[key] = engine
                while len(self._engines) > self.size:
                    self._engines.popitem(last=False)[1].close()
            return engine


ENGINES = EngineCache(2)


def load_engine(
    model: str,
    task_path: Path | None,
    device: str,
    max_seq_len: int,
    batch_size: int,
    position_prob: float,
    cpu_threads: int | None = None,
) -> UieEngine:
    """A Taskflow for ``task_path`` (a local model) or ``model`` (downloaded into PPNLP_HOME).
    ``cpu_threads``: Paddle Inference's math threads on the CPU (Taskflow's default is half
    the cores)."""
    kwargs: dict[str, Any] = {
        "max_seq_len": max_seq_len,
        "batch_size": batch_size,
        "position_prob": position_prob,
        "device_id": -1 if device == "cpu" else int(device.partition(":")[2] or 0),
    }
    if device == "cpu" and cpu_threads:
        kwargs["num_threads"] = cpu_threads

    def build() -> tuple[Any, str, Path]:
        from paddlenlp import Taskflow

        if task_path is not None:
            family = model_family(task_path)
            # the name decides which tokenizer files Taskflow expects in task_path
            name = model if model in _family_names(family) else FAMILY_MODELS[family]
            return (
                Taskflow("information_extraction", model=name, task_path=str(task_path), **kwargs),
                family,
                Path(task_path),
            )
        taskflow = Taskflow("information_extraction", model=model, **kwargs)
        path = Path(taskflow.task_instance._task_path)
        return taskflow, model_family(path), path

    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uie-x-model")
    try:
        taskflow, family, path = thread.submit(build).result()
    except BaseException:
        thread.shutdown(wait=False)
        raise
    _guard_empty_spans(taskflow.task_instance)
    log.info("loaded %s (%s) from %s on %s", model if task_path is None else path.name, family, path, device)
    return UieEngine(taskflow=taskflow, family=family, task_path=path, thread=thread)


def _guard_empty_spans(task: Any) -> None:
    """Drop empty spans (start == end, decoded from padding) before Taskflow adds boxes to
    document results: its ``_add_bbox`` fails on them (UnboundLocalError in 3.0.0b4)."""
    add_bbox_info = task._add_bbox_info

    def without_empty_spans(results: list[dict], data: list[dict]) -> list[dict]:
        def keep(items: list[dict]) -> list[dict]:
            kept = [i for i in items if "start" not in i or i["end"] > i["start"]]
            for item in kept:
                if item.get("relations"):
                    item["relations"] = {k: keep(v) for k, v in item["relations"].items()}
            return kept

        return add_bbox_info([{k: keep(v) for k, v in r.items()} for r in results], data)

    task._add_bbox_info = without_empty_spans


def _family_names(family: str) -> set[str]:
    if family == "UIEX":
        return {"uie-x-base"}
    if family == "UIEM":
        return {"uie-m-base", "uie-m-large"}
    return {
        "uie-base",
        "uie-medium",
        "uie-mini",
        "uie-micro",
        "uie-nano",
        "uie-tiny",
        "uie-medical-base",
        "uie-base-en",
    }
