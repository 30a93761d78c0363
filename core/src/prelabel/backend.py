"""The Backend base class every plugin subclasses, and what predict/fit receive."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from prelabel.labelconfig import ControlInfo, ParsedConfig
from prelabel.settings import BackendSettings, CoreSettings

if TYPE_CHECKING:
    from fastapi import APIRouter

    from prelabel.jobs import JobContext
    from prelabel.media import MediaFetcher
    from prelabel.metrics import Metrics
    from prelabel.state import ProjectState


class Task:
    """A Label Studio task as /predict sends it: ``id``, ``data`` and the raw dict.

    Other keys (``annotations``, ``meta``, ``file_upload``...) read as attributes, None when
    absent. A plain class rather than a pydantic model: /predict builds hundreds per request.
    """

    __slots__ = ("id", "data", "raw")

    def __init__(self, id: int | None, data: dict[str, Any], raw: dict[str, Any] | None = None):
        self.id = id
        self.data = data
        self.raw = raw if raw is not None else {"id": id, "data": data}

    @classmethod
    def from_dict(cls, raw: Any) -> Task:
        """Check the shape Label Studio sends; ValueError says what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError(f"a task must be an object, got {type(raw).__name__}")
        data = raw.get("data")
        if not isinstance(data, dict):
            raise ValueError("a task needs a 'data' object" + ("" if data is None else f", got {type(data).__name__}"))
        tid = raw.get("id")
        if tid is not None and (isinstance(tid, bool) or not isinstance(tid, int)):
            if isinstance(tid, str) and tid.isdigit():
                tid = int(tid)
            else:
                raise ValueError(f"task id must be an integer, got {tid!r}")
        return cls(tid, data, raw)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.raw.get(name)

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, data keys={sorted(self.data)})"


@dataclass
class Prediction:
    """One task's prediction: Label Studio result regions and an overall score."""

    result: list[dict] = field(default_factory=list)
    score: float | None = None

    def to_json(self, model_version: str) -> dict:
        return {"result": self.result, "score": self.score, "model_version": model_version}


class TaskError(Exception):
    """Raised, or returned in place of a prediction, when one task cannot be predicted.

    The message should say what the user can do about it; the task gets an empty result."""


PredictOutput = Prediction | list | dict | None | BaseException


@dataclass
class Project:
    """A Label Studio project as the backend knows it."""

    id: str
    key: str
    config: ParsedConfig
    hostname: str | None = None
    access_token: str | None = None
    trained_version: str | None = None
    trained_dir: Path | None = None


@dataclass
class PredictContext:
    """What ``predict`` gets beside the tasks: project, config, media, state, context."""

    project: Project
    model_version: str
    model_dir: Path | None
    media: MediaFetcher
    state: ProjectState
    params: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger | logging.LoggerAdapter = field(default_factory=lambda: logging.getLogger("prelabel.predict"))

    @property
    def config(self) -> ParsedConfig:
        return self.project.config

    @property
    def interactive(self) -> dict | None:
        """The interactive context Label Studio passed (``params.context``), if any."""
        ctx = self.params.get("context") if self.params else None
        return ctx or None

    def context_regions(self, result_type: str | None = None) -> list[dict]:
        """The regions of the interactive context, optionally of one ``type``."""
        regions = (self.interactive or {}).get("result") or []
        return [r for r in regions if isinstance(r, dict) and (result_type is None or r.get("type") == result_type)]


@dataclass(frozen=True)
class Limits:
    """How many tasks one ``predict`` call gets and how many calls run at once per process:
    the backend's class defaults, or the ``max_batch_size``/``max_concurrency`` settings."""

    max_batch_size: int
    max_concurrency: int


@dataclass
class RouteContext:
    """What ``Backend.add_routes`` handlers get: the project lookup, media for a project, and
    the settings, instead of the whole process runtime."""

    settings: BackendSettings
    core: CoreSettings
    project: Callable[[str | None], Project]
    media: Callable[[Project | None], MediaFetcher]


class Backend:
    """Base class of a prelabel backend (one model family).

    Capabilities are class attributes (``supports`` says which control tag goes on which
    object tags); ``setup(device)`` loads weights once per process; ``predict`` receives at
    most ``limits.max_batch_size`` tasks at a time and returns one entry per task.
    """

    backend_id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: control tag -> the object tags it may label, e.g. ``{"RectangleLabels": {"Image"}}``;
    #: core keeps the controls of a config that match a pair and are not ``model_skip="true"``
    supports: ClassVar[Mapping[str, frozenset[str] | set[str]]] = {}
    #: defaults of the ``max_batch_size`` and ``max_concurrency`` settings (see ``limits``)
    max_batch_size: ClassVar[int] = 32
    max_concurrency: ClassVar[int] = 1
    trainable: ClassVar[bool] = False
    default_port: ClassVar[int] = 9090
    version: ClassVar[str] = "0"
    Settings: ClassVar[type[BackendSettings]] = BackendSettings
    default_label_config: ClassVar[str | None] = None
    #: regions that do not fit the project's config are always dropped; with this set, the
    #: task's result also gets an ``error`` that names them (label-studio-ml models, whose
    #: authors expect to see every region they return)
    report_dropped_regions: ClassVar[bool] = False
    #: modules core imports in the process's main thread before ``setup`` runs in its own
    #: thread: a framework whose thread-local state is made by its import (paddle: imported
    #: first in the setup thread, a training job's thread later segfaulted inside libpaddle)
    main_thread_imports: ClassVar[tuple[str, ...]] = ()
    #: the process's Prometheus metrics, set by the Runtime (None outside one): a backend may
    #: register its own counters on ``metrics.registry`` so /metrics shows them
    metrics: Metrics | None = None

    def __init__(self, settings: BackendSettings | None = None, core: CoreSettings | None = None):
        self.settings = settings if settings is not None else self.Settings()
        self.core = core if core is not None else CoreSettings()
        self.log = logging.getLogger(f"prelabel.backend.{self.backend_id}")
        self.limits = limits_in_force(type(self), self.settings)

    # -- the plugin's part ------------------------------------------------------------------
    @classmethod
    def preflight(cls, settings: BackendSettings, core: CoreSettings) -> None:
        """Cheap checks before serving (a key is set, a weights file exists). Raise
        ``ValueError`` with a message that says what to set; ``prelabel serve`` stops on it."""

    @classmethod
    def doctor(cls, settings: BackendSettings, core: CoreSettings) -> list[tuple[str, bool, str]]:
        """Extra ``prelabel doctor`` rows, (check name, passed, detail), after ``preflight``
        passed: e.g. the provider offers the model, one real call works. May be slow."""
        return []

    def setup(self, device: str | None) -> None:
        """Load weights and anything expensive. Called once per process, off the event loop.
        ``device`` is the torch device core resolved from a ``device`` setting (``DEVICE=auto``:
        the first GPU, else mps, else cpu), or None when the settings have no ``device``."""

    def model_version(self) -> str:
        """The version served before any training (and always, for untrainable backends)."""
        return f"{self.backend_id}-{self.version}"

    def health(self) -> dict[str, Any]:
        """Extra keys for ``GET /health`` (for example the upstream model name)."""
        return {}

    def supported_controls(self, config: ParsedConfig) -> list[ControlInfo]:
        """The controls of ``config`` this backend fills: by default the ``supports`` pairs,
        without those marked ``model_skip="true"``. Override only for rules beyond tag pairs."""
        return config.matching(self.supports)

    def predict(
        self, tasks: list[Task], ctx: PredictContext
    ) -> Sequence[PredictOutput] | Awaitable[Sequence[PredictOutput]]:
        """Return one entry per task, in order: a Prediction, a result list, None for no
        regions, or a TaskError for a task that failed. May be ``async def``."""
        raise NotImplementedError

    def fit(self, job: JobContext) -> dict[str, Any]:
        """Train from the project's annotations (``job.annotations()``) into ``job.workdir``;
        return metrics. Core promotes ``job.workdir`` to a new model version only when this returns."""
        raise NotImplementedError("this backend is not trainable")

    def add_routes(self, router: APIRouter, ctx: RouteContext) -> None:
        """Add this backend's own HTTP endpoints (a direct-use API beside the Label Studio
        protocol, e.g. ``POST /v1/extract``) to ``router``, a ``fastapi.APIRouter``. Called once
        by ``create_app``. Core mounts them after its own endpoints, refuses a path under one of
        its own (``/predict``, ``/jobs``...), and answers 503 for them until the model is
        ready; its middleware (Basic auth, body size limit, request id, metrics) covers them."""


def limits_in_force(cls: type[Backend], settings: BackendSettings) -> Limits:
    """The class defaults, replaced by the settings' ``max_batch_size``/``max_concurrency``
    where the plugin's settings set them (None there means the class default)."""
    batch = getattr(settings, "max_batch_size", None)
    concurrency = getattr(settings, "max_concurrency", None)
    return Limits(
        max_batch_size=int(batch or cls.max_batch_size), max_concurrency=int(concurrency or cls.max_concurrency)
    )


def object_tags_of(supports: Mapping[str, Any]) -> frozenset[str]:
    """Every object tag a ``supports`` mapping names."""
    return frozenset().union(*supports.values()) if supports else frozenset()


def describe_supports(supports: Mapping[str, Any]) -> str:
    """``Choices on HyperText/Text, Labels on Text`` for messages."""
    return ", ".join(f"{tag} on {'/'.join(sorted(objs))}" for tag, objs in sorted(supports.items()))


def check_declaration(cls: type[Backend]) -> None:
    """Raise TypeError when a backend class does not declare what core needs."""
    problems = []
    if not cls.backend_id or not cls.backend_id.isidentifier():
        problems.append("backend_id must be a non-empty identifier")
    if not cls.supports:
        problems.append('supports must map at least one control tag to its object tags, e.g. {"Choices": {"Text"}}')
    elif not all(isinstance(objs, (set, frozenset)) and objs for objs in cls.supports.values()):
        problems.append("every supports entry must be a non-empty set of object tags")
    if cls.max_batch_size < 1:
        problems.append("max_batch_size must be >= 1")
    if cls.max_concurrency < 1:
        problems.append("max_concurrency must be >= 1")
    if cls.trainable and cls.fit is Backend.fit:
        problems.append("trainable=True but fit() is not implemented")
    if problems:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__}: " + "; ".join(problems))


def capabilities_of(cls: type[Backend], limits: Limits | None = None) -> dict[str, Any]:
    """A backend class's declaration; with ``limits``, the values in force for one instance."""
    limits = limits or Limits(cls.max_batch_size, cls.max_concurrency)
    return {
        "backend_id": cls.backend_id,
        "title": cls.title or cls.backend_id,
        "supports": {tag: sorted(objs) for tag, objs in sorted(cls.supports.items())},
        "control_tags": sorted(cls.supports),
        "object_tags": sorted(object_tags_of(cls.supports)),
        "max_batch_size": limits.max_batch_size,
        "max_concurrency": limits.max_concurrency,
        "trainable": cls.trainable,
        "default_port": cls.default_port,
    }
