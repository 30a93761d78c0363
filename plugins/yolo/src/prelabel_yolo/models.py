"""Where weights come from (MODEL_ROOT, default names) and the process-wide model cache.

Every model is loaded once per process and kept in a bounded LRU cache; each cached model
carries its own lock, because an ultralytics predictor keeps per-call state (its dataset,
batch, trackers) and two threads predicting through one model at once corrupt each other.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from prelabel import TaskError

log = logging.getLogger(__name__)

# The ultralytics task each kind of output needs, and the weights used when a control names none.
DEFAULT_WEIGHTS = {
    "detect": "yolo11n.pt",
    "segment": "yolo11n-seg.pt",
    "pose": "yolo11n-pose.pt",
    "classify": "yolo11n-cls.pt",
    "obb": "yolo11n-obb.pt",
}
# a trained version's directory names its weights and the control they were trained for here
TRAINED_INFO = "training.json"


class ModelPathError(TaskError):
    """A model_path attribute that is refused or names no file; the message says what to change."""


def resolve_model_path(value: str, root: Path) -> Path:
    """The file a control's ``model_path`` names: relative to ``root``, never outside it.

    Upstream joined the attribute onto its model directory, so an absolute path or ``..``
    let anyone who can edit a label config load any file of the server; both are refused."""
    raw = str(value).strip()
    if not raw:
        raise ModelPathError("model_path is empty: name a weights file relative to MODEL_ROOT, or remove it")
    if raw.startswith(("/", "\\")) or PurePosixPath(raw).is_absolute() or PureWindowsPath(raw).drive:
        raise ModelPathError(
            f"model_path={value!r} is an absolute path; give a path relative to MODEL_ROOT "
            f'({root}), e.g. model_path="my_model.pt"'
        )
    if ".." in re.split(r"[\\/]+", raw):
        raise ModelPathError(f"model_path={value!r} contains '..'; weights must be inside MODEL_ROOT ({root})")
    base = Path(root).resolve()
    full = (base / raw).resolve()
    if base not in full.parents:
        raise ModelPathError(f"model_path={value!r} resolves to {full}, outside MODEL_ROOT ({base}); refused")
    return full


def downloadable(path: Path) -> bool:
    """True when ultralytics can download a file of this name (yolo11n.pt and the like)."""
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return path.name in GITHUB_ASSETS_NAMES


def _set_cpu_threads(threads: int | None) -> None:
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@contextmanager
def use_cpu_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads for CPU inference (None: leave them). ultralytics'
    select_device() resets them to ``os.cpu_count() - 1`` (1 on a 2-core machine) when a model's
    predictor is set up, inside its first call: so they are set again after each call, and
    every call but a model's first runs with ``threads``."""
    _set_cpu_threads(threads)
    try:
        yield
    finally:
        _set_cpu_threads(threads)


def half_precision_args() -> dict[str, Any]:
    """Predict arguments for fp16: ``quantize=16`` where ultralytics has it (8.4), else ``half``."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return {"quantize": 16} if "quantize" in DEFAULT_CFG_DICT else {"half": True}


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@dataclass
class LoadedModel:
    """An ultralytics model, the lock that serializes its use, and how often it was called."""

    model: Any
    path: Path
    signature: tuple[int, int] | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: int = 0

    @property
    def task(self) -> str:
        return str(self.model.task)

    @property
    def names(self) -> dict[int, str]:
        return dict(self.model.names)


class ModelCache:
    """A bounded LRU of loaded models keyed by (file, device); a replaced file is reloaded."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self.loads = 0
        self._entries: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def resize(self, capacity: int) -> None:
        with self._lock:
            self.capacity = capacity
            self._evict()

    def loaded(self) -> list[str]:
        with self._lock:
            return [path for path, _ in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, path: Path, device: str) -> LoadedModel:
        """The model at ``path``, loading it (once, even under concurrent calls) if needed."""
        key = (str(path), device)
        while True:
            with self._lock:
                hit = self._entries.get(key)
                if hit is not None and hit.signature == _signature(path):
                    self._entries.move_to_end(key)
                    return hit
                loading = self._loading.setdefault(key, threading.Lock())
            with loading:  # one loader per key; the others wait, then find it cached
                with self._lock:
                    hit = self._entries.get(key)
                    fresh = hit is not None and hit.signature == _signature(path)
                if fresh:
                    continue
                entry = self._load(path, device)
                with self._lock:
                    self._entries[key] = entry
                    self._entries.move_to_end(key)
                    self._loading.pop(key, None)
                    self._evict()
                return entry

    def _load(self, path: Path, device: str) -> LoadedModel:
        from ultralytics import YOLO

        log.info("loading YOLO weights %s on %s", path, device)
        model = YOLO(str(path))  # a known name (yolo11n.pt...) missing from MODEL_ROOT is downloaded there
        self.loads += 1
        log.info("loaded %s: task %s, %d classes", path.name, model.task, len(model.names))
        return LoadedModel(model=model, path=path, signature=_signature(path))

    def _evict(self) -> None:
        while len(self._entries) > self.capacity:
            key, _ = self._entries.popitem(last=False)
            log.info("unloaded %s (YOLO_CACHE_MODELS=%d)", key[0], self.capacity)


#: the one cache of this process (models are shared by every project and request)
CACHE = ModelCache()
