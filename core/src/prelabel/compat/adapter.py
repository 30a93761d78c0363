"""Serve a label-studio-ml model class as a prelabel backend.

``adapt(ModelClass)`` builds a :class:`LabelStudioMLAdapter` subclass for it. The model class
is instantiated once per process and project (upstream builds one per request), with the
project's id and label config, so its ``setup()`` runs once; a project whose label config
changes gets a new instance. ``predict`` receives the tasks as Label Studio sent them, the
interactive ``context`` and ``login``/``password``; whatever it returns (a ModelResponse, a
list of dicts or PredictionValues) becomes one prediction per task, stamped with the version
/setup reports: the instance's ``get("model_version")``. ``fit(event, data)`` runs as a
``train`` job for START_TRAINING and the model's ``TRAIN_EVENTS``, never inside the webhook.
``get``/``set`` go to prelabel's state store (namespace ``label_studio_ml:<project>``), so
every process sees the same values; ``get_local_path`` downloads through prelabel's media layer.

A process keeps the instances it made in an LRU bounded by count (``MODEL_INSTANCES_MAX``) and
by memory (``MODEL_INSTANCES_MAX_MB``), so requests with ever new project ids cannot grow the
process without end; an evicted project gets a new instance (and ``setup()``) when it comes
back. An instance's memory is measured as the process's RSS growth while it was built; since
memory freed by evicted instances is reused without growing RSS, each instance counts at least
as much as the largest growth seen for one (the first build, which also pays one-off imports,
counts as that typical size once a second one has been built).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from label_studio_sdk.label_interface.objects import PredictionValue, serialize_regions
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from prelabel.backend import Backend, Prediction, TaskError, check_declaration
from prelabel.compat.base import LabelStudioMLBase
from prelabel.labelconfig import parse_label_config
from prelabel.settings import BackendSettings
from prelabel.state import ProjectState, StateStore

if TYPE_CHECKING:
    from prelabel.backend import PredictContext, Task
    from prelabel.jobs import JobContext
    from prelabel.labelconfig import ControlInfo, ParsedConfig
    from prelabel.media import MediaFetcher

log = logging.getLogger("prelabel.compat")

_MISSING = object()
_MAX_WARNED = 4096  # distinct once-only warnings remembered per process
_SETUP_VERSION_KEY = "prelabel:setup_model_version"  # the version setup() set when it last ran
# Keys of Label Studio's project object that are secrets; they are dropped from a webhook's
# payload before it is stored as a job's params (GET /jobs shows params).
_SECRET_PROJECT_KEYS = ("task_data_password", "token")


def _sdk_tag_names(module: str, fallback: set[str]) -> frozenset[str]:
    """Every tag label-studio-sdk knows (``ChoicesTag`` -> ``Choices``)."""
    try:
        mod = __import__(f"label_studio_sdk.label_interface.{module}", fromlist=["_TAG_TO_CLASS"])
        names = {cls[:-3] for cls in mod._TAG_TO_CLASS.values() if cls.endswith("Tag")}
    except (ImportError, AttributeError):
        names = set()
    return frozenset(names or fallback)


ALL_CONTROL_TAGS = _sdk_tag_names("control_tags", {"Choices", "Labels", "RectangleLabels", "TextArea"})
ALL_OBJECT_TAGS = _sdk_tag_names("object_tags", {"Text", "Image", "Audio", "Video", "HyperText"})


def is_model_class(obj: Any) -> bool:
    """A subclass (not the class itself) of prelabel's LabelStudioMLBase, or of the real
    ``label_studio_ml.model.LabelStudioMLBase`` when that package is installed."""
    if not isinstance(obj, type):
        return False
    return any(_is_base(k) for k in obj.__mro__[1:]) and not _is_base(obj)


def _is_base(cls: type) -> bool:
    return cls is LabelStudioMLBase or (
        cls.__name__ == "LabelStudioMLBase" and cls.__module__.split(".")[0] == "label_studio_ml"
    )


def _defined_by_base(model_class: type, name: str) -> bool:
    """True when ``name`` comes from a LabelStudioMLBase, not from the model's own classes."""
    for klass in model_class.__mro__:
        if name in vars(klass):
            return _is_base(klass)
    return True


class _Binding:
    """Where one instance's get/set and get_local_path go: prelabel's state and media."""

    def __init__(self, adapter: LabelStudioMLAdapter, store: StateStore, project_id: str):
        self.adapter = adapter
        self.store = store
        self.project_id = project_id
        self.ns = f"label_studio_ml:{project_id}"

    def get(self, key: str) -> Any:
        return self.store.get(self.ns, key)

    def set(self, key: str, value: Any) -> None:
        self.store.set(self.ns, key, value)

    def has(self, key: str) -> bool:
        return self.store.get(self.ns, key, _MISSING) is not _MISSING

    def media(self, ls_host: str | None = None, ls_access_token: str | None = None) -> MediaFetcher:
        media = self.adapter.media_for(self.store, self.project_id)
        if ls_host or ls_access_token:
            media = media.bind(ls_host or media.ls_url, ls_access_token or media.token, media.login, media.password)
        return media

    def local_path(
        self, url: str, task_id: int | None = None, ls_host: str | None = None, ls_access_token: str | None = None
    ) -> str:
        return str(self.media(ls_host, ls_access_token).fetch_path(url, task_id))

    def access_token(self) -> str | None:
        return self.media().token

    def install(self, instance: Any) -> None:
        """Attach to an instance before its __init__ runs. prelabel's base class reads the
        binding itself; the real upstream base gets instance attributes that shadow its
        get/set/has/get_local_path, unless the model overrides them."""
        instance.__dict__["_prelabel_binding"] = self
        if isinstance(instance, LabelStudioMLBase):
            return

        def get_local_path(url, project_dir=None, ls_host=None, ls_access_token=None, task_id=None, *args, **kwargs):
            return self.local_path(url, task_id, ls_host, ls_access_token)

        shadows = {
            "get": self.get,
            "set": self.set,
            "has": self.has,
            "get_local_path": get_local_path,
            "get_label_studio_access_token": self.access_token,
        }
        for name, function in shadows.items():
            if _defined_by_base(type(instance), name):
                instance.__dict__[name] = function


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class CompatSettings(BackendSettings):
    """Environment variables: MODEL_INSTANCES_MAX, MODEL_INSTANCES_MAX_MB."""

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, protected_namespaces=())

    model_instances_max: int = Field(32, ge=1, description="Model instances (projects) a process keeps.")
    model_instances_max_mb: float = Field(
        1024,
        gt=0,
        description="Memory the kept instances may take, in MB (each measured by the RSS growth "
        "while it was built); the least recently used go first. One is always kept.",
    )


@dataclass
class _Entry:
    instance: Any
    label_config: str | None
    recorded_version: str | None = None
    size: int = 0  # bytes the process grew by while the instance was built
    first: bool = False  # the process's first build: its size includes one-off costs


class LabelStudioMLAdapter(Backend):
    """A prelabel Backend around a label-studio-ml model class (see :func:`adapt`).

    Besides the Backend contract it implements the protocols of :mod:`prelabel.compat.hooks`
    (``project_version``, ``job_handlers``, ``train_on_event``): an upstream model keeps its
    own per-project versions and decides itself which events train it."""

    model_class: ClassVar[type]
    model_file: ClassVar[str | None] = None
    train_events: ClassVar[frozenset[str]] = frozenset(LabelStudioMLBase.TRAIN_EVENTS)
    supports = {tag: ALL_OBJECT_TAGS for tag in ALL_CONTROL_TAGS}
    max_batch_size = 1000
    default_port = 9090
    version = LabelStudioMLBase.INITIAL_MODEL_VERSION
    Settings = CompatSettings
    # upstream stored every region a model returned; prelabel drops those that do not fit the
    # config (Label Studio's prediction validation refuses the whole batch for one of them),
    # and says so in the task's error, so the author sees why
    report_dropped_regions = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._instances: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._builds = 0
        self._typical_size: int | None = None  # largest RSS growth of a build after the first
        self._lock = threading.RLock()
        self._local = threading.local()
        self._media: MediaFetcher | None = None
        self._warned: set[tuple] = set()

    # -- declaration ------------------------------------------------------------------------
    def model_version(self) -> str:
        """What a project reports before its instance exists: the model's initial version."""
        return self.version

    def supported_controls(self, config: ParsedConfig) -> list[ControlInfo]:
        """Every control: an upstream model declares no tags, so any config is accepted."""
        return list(config.controls)

    def health(self) -> dict[str, Any]:
        return {"model_file": Path(self.model_file).name} if self.model_file else {}

    def job_handlers(self) -> dict:
        return {"train": self.fit} if self.trainable else {}

    # -- instances --------------------------------------------------------------------------
    def instance(self, state: ProjectState, label_config: str | None = None) -> Any:
        """The project's model instance, created on first use (and again when the project's
        label config changes). Creation runs the model's __init__ and setup()."""
        return self._entry(state.store, state.project_id, label_config).instance

    def instances(self) -> dict[str, Any]:
        """The instances this process holds, by project id, least recently used first."""
        with self._lock:
            return {pid: entry.instance for pid, entry in self._instances.items()}

    def instances_bytes(self) -> int:
        """The memory the kept instances are counted as (see the module's docstring)."""
        with self._lock:
            return sum(self._cost(entry) for entry in self._instances.values())

    def _cost(self, entry: _Entry) -> int:
        typical = self._typical_size
        if typical is None:
            return entry.size
        return typical if entry.first else max(entry.size, typical)

    def _entry(self, store: StateStore, project_id: str, label_config: str | None) -> _Entry:
        entry = self._instances.get(project_id)
        if entry is not None and (label_config is None or entry.label_config == label_config):
            with contextlib.suppress(KeyError):  # evicted meanwhile: this caller still gets it
                self._instances.move_to_end(project_id)
            return entry
        with self._lock:
            entry = self._instances.get(project_id)
            if entry is None or (label_config is not None and entry.label_config != label_config):
                if entry is not None:
                    log.info(
                        "project %s: the label config changed; new %s instance", project_id, self.model_class.__name__
                    )
                before = rss_bytes()
                instance = self._create(store, project_id, label_config)
                after = rss_bytes()
                size = max(0, after - before) if before is not None and after is not None else 0
                self._builds += 1
                entry = _Entry(instance, label_config, size=size, first=self._builds == 1)
                if not entry.first:
                    self._typical_size = max(self._typical_size or 0, size)
                self._instances[project_id] = entry
            self._instances.move_to_end(project_id)
            self._evict()
            return entry

    def _evict(self) -> None:
        """Drop least recently used instances past the count or memory bound (keeping one)."""
        limit = self.settings.model_instances_max
        budget = self.settings.model_instances_max_mb * 1024 * 1024
        total = sum(self._cost(entry) for entry in self._instances.values())
        while len(self._instances) > 1 and (len(self._instances) > limit or total > budget):
            pid, old = self._instances.popitem(last=False)
            total -= self._cost(old)
            log.info(
                "project %s: dropped its %s instance (%.1f MB) to stay within MODEL_INSTANCES_MAX=%d and "
                "MODEL_INSTANCES_MAX_MB=%g; it is built again when the project comes back",
                pid,
                self.model_class.__name__,
                self._cost(old) / 1e6,
                limit,
                self.settings.model_instances_max_mb,
            )

    def _create(self, store: StateStore, project_id: str, label_config: str | None) -> Any:
        cls = self.model_class
        started = time.perf_counter()
        instance = cls.__new__(cls)
        binding = _Binding(self, store, project_id)
        binding.install(instance)
        before = binding.get("model_version")
        instance.__init__(project_id=project_id, label_config=label_config)
        self._keep_fitted_version(binding, before)
        log.info("project %s: %s instance ready in %.2fs", project_id, cls.__name__, time.perf_counter() - started)
        return instance

    @staticmethod
    def _keep_fitted_version(binding: _Binding, before: Any) -> None:
        """Upstream runs setup() on every request, so a setup() that sets a fixed version (the
        scaffold's) is harmless there only because fit's version never lasted. Here setup()
        runs when a process first sees a project: the fixed value it set last time must not
        undo what fit() stored since, in this process or another. A new value still wins."""
        after = binding.get("model_version")
        if after == before:
            return
        if before and after == binding.get(_SETUP_VERSION_KEY):
            binding.set("model_version", before)
            log.info(
                "project %s: keeping model_version %r from fit(); setup() set its unchanged %r",
                binding.project_id,
                before,
                after,
            )
        else:
            binding.set(_SETUP_VERSION_KEY, after)

    def _version_of(self, instance: Any) -> str:
        version = instance.get("model_version") or getattr(instance, "model_version", None)
        return str(version) if version else self.version

    def project_version(self, state: ProjectState, label_config: str | None) -> str | None:
        if label_config and not parse_label_config(label_config).controls:
            return None  # refused with a 400 (nothing to fill): build no instance for it
        entry = self._entry(state.store, state.project_id, label_config)
        version = self._version_of(entry.instance)
        if version != entry.recorded_version:
            self._record_version(state, version)
            entry.recorded_version = version
        return version

    @staticmethod
    def _record_version(state: ProjectState, version: str) -> None:
        """List the version in the project's ``versions`` (what GET /versions shows)."""
        versions = state.get("versions") or []
        if not any(v.get("version") == version for v in versions):
            state.set("versions", [*versions, {"version": version, "created_at": time.time()}])

    # -- media ------------------------------------------------------------------------------
    def media_for(self, store: StateStore, project_id: str) -> MediaFetcher:
        """The fetcher of the predict call or job running in this thread, else one for the
        project's Label Studio URL and token."""
        current = getattr(self._local, "media", None)
        if current is not None:
            return current
        with self._lock:
            if self._media is None:
                from prelabel.media import MediaFetcher

                self._media = MediaFetcher(self.core)
        st = ProjectState(store, project_id)
        return self._media.bind(st.get("hostname"), st.get("access_token"))

    @contextlib.contextmanager
    def _using(self, media: MediaFetcher) -> Iterator[None]:
        previous = getattr(self._local, "media", None)
        self._local.media = media
        try:
            yield
        finally:
            self._local.media = previous

    # -- predict ----------------------------------------------------------------------------
    def predict(self, tasks: list[Task], ctx: PredictContext) -> list:
        instance = self._entry(ctx.state.store, ctx.project.id, ctx.config.xml).instance
        params = dict(ctx.params or {})
        context = params.pop("context", {})
        with self._using(ctx.media):
            output = instance.predict([task.raw for task in tasks], context=context, **params)
        return self._per_task(output, ctx)

    def _per_task(self, output: Any, ctx: PredictContext) -> list:
        name = self.model_class.__name__
        if output is None:
            return []
        if isinstance(output, dict):
            output = output.get("predictions", output)
        elif not isinstance(output, (list, tuple)) and hasattr(output, "predictions"):
            self._check_version(getattr(output, "model_version", None), ctx)
            output = output.predictions
        if not isinstance(output, (list, tuple)):
            raise TypeError(
                f"{name}.predict returned {type(output).__name__}: return a ModelResponse or a list "
                "with one prediction per task"
            )
        return [self._one(item, ctx) for item in output]

    def _one(self, item: Any, ctx: PredictContext) -> Any:
        if item is None:
            return None
        if isinstance(item, (list, tuple)):
            predictions = [p for p in item if _is_prediction(p)]
            if not predictions or len(predictions) != len(item):
                return Prediction(list(item))  # a bare list of regions
            if len(predictions) > 1:
                self._warn_once(
                    ("several", ctx.project.id),
                    "%s.predict returned %d predictions for one task; prelabel keeps the first (one per task)",
                    self.model_class.__name__,
                    len(predictions),
                )
            item = predictions[0]
        if type(item) is PredictionValue:
            # read, not dumped: model_dump copies every region through pydantic's serializer,
            # a third of this adapter's cost per task; serialize_regions is what that
            # serializer does to ``result`` (Region objects to dicts, dicts as they are)
            self._check_version(item.model_version, ctx)
            score = item.score
            return Prediction(serialize_regions(item.result or []), None if score is None else float(score))
        if not isinstance(item, dict) and hasattr(item, "model_dump"):
            item = item.model_dump()
        if not isinstance(item, dict) or "result" not in item:
            return TaskError(
                f"{self.model_class.__name__}.predict returned {type(item).__name__} for a task: "
                "return a dict with 'result' (and 'score'), or a PredictionValue"
            )
        self._check_version(item.get("model_version"), ctx)
        score = item.get("score")
        return Prediction(list(item.get("result") or []), None if score is None else float(score))

    def _check_version(self, version: Any, ctx: PredictContext) -> None:
        if version and str(version) != ctx.model_version:
            self._warn_once(
                ("version", ctx.project.id, str(version)),
                "project %s: %s.predict says model_version %r but the project's get('model_version') "
                "is %r; predictions carry %r (what /setup reports), or Label Studio would predict the "
                "same tasks again. Set the version with self.set('model_version', ...) in setup() or fit()",
                ctx.project.id,
                self.model_class.__name__,
                str(version),
                ctx.model_version,
                ctx.model_version,
            )

    def _warn_once(self, key: tuple, message: str, *args: Any) -> None:
        if key not in self._warned:
            if len(self._warned) >= _MAX_WARNED:  # keys carry project ids, which callers choose
                self._warned.clear()
            self._warned.add(key)
            log.warning(message, *args)

    # -- training ---------------------------------------------------------------------------
    def train_on_event(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action not in self.train_events:
            return None
        return {"event": action, "data": _without_secrets(payload)}

    def fit(self, job: JobContext) -> dict[str, Any]:
        """The ``train`` job: call the model's ``fit(event, data)`` on the project's instance.

        Webhook events pass their body (without ``action``) as ``data``, as upstream does. The
        legacy /train call (and ``POST /jobs`` with ``tasks``) passes
        ``{"project": {"id", "label_config"}, "annotations": [annotated tasks]}`` as START_TRAINING.
        """
        state = job.runtime.project_state(job.project)
        label_config = state.get("label_config")
        entry = self._entry(state.store, job.project, label_config)
        event = job.params.get("event") or "START_TRAINING"
        data = job.params.get("data")
        if data is None:
            pid: int | str = int(job.project) if str(job.project).isdigit() else job.project
            data = {
                "project": {"id": pid, "label_config": label_config},
                "annotations": list(job.params.get("tasks") or []),
            }
        before = self._version_of(entry.instance)
        job.progress(0.0, f"{self.model_class.__name__}.fit({event})")
        try:
            with self._using(job.media):
                output = entry.instance.fit(event, data)
        except BaseException:
            if self._version_of(entry.instance) != before:  # the version moves only when fit() succeeds
                entry.instance.set("model_version", before)
            raise
        after = self._version_of(entry.instance)
        self._record_version(state, after)
        entry.recorded_version = after
        result: dict[str, Any] = {
            "event": event,
            "model_version": after,
            "previous_model_version": before,
            "fit_result": _jsonable(output),
        }
        if event == "START_TRAINING" and after == before:
            result["warning"] = (
                f"fit() left model_version at {after!r}: Label Studio keeps the predictions it "
                "has for it. Set a new version in fit(), e.g. self.bump_model_version()"
            )
            job.log.warning(result["warning"])
        return result


def _is_prediction(item: Any) -> bool:
    return (isinstance(item, dict) and "result" in item) or (hasattr(item, "result") and hasattr(item, "model_dump"))


def _without_secrets(payload: dict[str, Any]) -> dict[str, Any]:
    project = payload.get("project")
    if not isinstance(project, dict) or not any(k in project for k in _SECRET_PROJECT_KEYS):
        return payload
    return {**payload, "project": {k: (None if k in _SECRET_PROJECT_KEYS else v) for k, v in project.items()}}


def _jsonable(value: Any) -> Any:
    """What fit returned, as JSON for the job's result (anything else as its repr)."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)


def _backend_id(class_name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()
    snake = re.sub(r"\W", "_", snake)
    return snake if snake.isidentifier() else f"model_{snake}"


def adapt(model_class: type, model_file: str | None = None) -> type[LabelStudioMLAdapter]:
    """A prelabel Backend class that serves ``model_class`` (a LabelStudioMLBase subclass)."""
    if not is_model_class(model_class):
        raise TypeError(f"{model_class!r} is not a subclass of LabelStudioMLBase")
    name = model_class.__name__
    doc = (model_class.__doc__ or "").strip()
    attrs = {
        "__module__": __name__,
        "__doc__": f"prelabel backend serving the label-studio-ml model {model_class.__module__}.{name}.",
        "model_class": model_class,
        "model_file": model_file,
        "backend_id": _backend_id(name),
        "title": name,
        "description": doc.splitlines()[0] if doc else f"The label-studio-ml model {name}.",
        "trainable": not _defined_by_base(model_class, "fit"),
        "version": str(getattr(model_class, "INITIAL_MODEL_VERSION", None) or LabelStudioMLBase.INITIAL_MODEL_VERSION),
        "train_events": frozenset(getattr(model_class, "TRAIN_EVENTS", None) or LabelStudioMLBase.TRAIN_EVENTS)
        | {"START_TRAINING"},
    }
    backend_class = type(name, (LabelStudioMLAdapter,), attrs)
    check_declaration(backend_class)
    return backend_class


__all__ = [
    "ALL_CONTROL_TAGS",
    "ALL_OBJECT_TAGS",
    "CompatSettings",
    "LabelStudioMLAdapter",
    "adapt",
    "is_model_class",
    "rss_bytes",
]
