"""``LabelStudioMLBase``: the base class of label-studio-ml-backend models, run by prelabel.

Same API and meaning as upstream's ``label_studio_ml.model.LabelStudioMLBase`` (2.x): the
constructor takes ``project_id`` and ``label_config``, stores the config, sets the initial
model version and calls ``setup()``; ``get``/``set`` keep per-project values; ``predict`` and
``fit`` are what a model overrides. What differs is where things live: served by prelabel
(``prelabel serve --model-file``), ``get``/``set`` go to prelabel's state store (SQLite or
Redis, shared by every process) and ``get_local_path`` downloads through prelabel's media
layer with the project's Label Studio URL and token. Used on its own (a unit test that
instantiates a model), values live in a dict of this process.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from prelabel.compat.response import ModelResponse, PredictionValue
from prelabel.compat.utils import is_preload_needed

logger = logging.getLogger("prelabel.compat")

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?!.*\d+\.\d+\.\d+)")


class _ProcessValues:
    """get/set outside prelabel's server: a dict shared by the instances of this process."""

    _values: dict[tuple[str, str], Any] = {}
    _lock = threading.Lock()

    def __init__(self, project_id: str):
        self.project_id = project_id

    def get(self, key: str) -> Any:
        return self._values.get((self.project_id, key))

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._values[(self.project_id, key)] = value

    def has(self, key: str) -> bool:
        return (self.project_id, key) in self._values

    def local_path(
        self, url: str, task_id: int | None = None, ls_host: str | None = None, ls_access_token: str | None = None
    ) -> str:
        from prelabel.media import MediaFetcher
        from prelabel.settings import CoreSettings

        fetcher = MediaFetcher(CoreSettings(), ls_host, ls_access_token)
        try:
            return str(fetcher.fetch_path(url, task_id))
        finally:
            fetcher.close()

    def access_token(self) -> str | None:
        from prelabel.settings import CoreSettings

        key = CoreSettings().label_studio_api_key
        return key.get_secret_value() if key else None


class LabelStudioMLBase:
    """Base class of a label-studio-ml model: override ``setup``, ``predict`` and ``fit``."""

    INITIAL_MODEL_VERSION = "0.0.1"
    #: webhook events that call ``fit`` (upstream's list; add to it in a subclass)
    TRAIN_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "START_TRAINING")

    def __init__(self, project_id: str | None = None, label_config: str | None = None):
        self.project_id = project_id or ""
        if label_config is not None:
            self.use_label_config(label_config)
        else:
            logger.warning("%s: no label config was given", type(self).__name__)
        if not self.model_version:
            self.set("model_version", self.INITIAL_MODEL_VERSION)
        self.setup()

    # -- what a model overrides ---------------------------------------------------------------
    def setup(self) -> None:
        """Called once per instance, after the label config is applied: load the model, set
        ``model_version``. Served by prelabel, that is once per process and project."""

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs: Any) -> ModelResponse | list[dict]:
        """Return one prediction per task, in order: a ModelResponse, or a list of
        ``{"result": [...], "score": ...}`` dicts. ``kwargs`` carry ``login``/``password``."""
        return []

    def fit(self, event: str, data: dict, **additional_params: Any) -> Any:
        """Train or update on a webhook event (``START_TRAINING``, ``ANNOTATION_CREATED``...);
        ``data`` is the event's body without ``action``. Served by prelabel, it runs as a job."""

    def process_event(self, event: str, data: dict, job_id: str | None, additional_params: dict) -> Any:
        """Call ``fit`` for an event of ``TRAIN_EVENTS`` (upstream's dispatcher)."""
        if event in self.TRAIN_EVENTS:
            return self.fit(event=event, data=data, job_id=job_id, **additional_params)
        return None

    # -- per-project values -------------------------------------------------------------------
    def _values(self) -> Any:
        binding = self.__dict__.get("_prelabel_binding")
        return binding if binding is not None else _ProcessValues(str(getattr(self, "project_id", "")))

    def get(self, key: str) -> Any:
        """The project's value for ``key`` (None when unset)."""
        return self._values().get(key)

    def set(self, key: str, value: Any) -> None:
        """Store a per-project value (any JSON value; upstream allows strings only)."""
        self._values().set(key, value)

    def has(self, key: str) -> bool:
        return self._values().has(key)

    # -- label config -------------------------------------------------------------------------
    def use_label_config(self, label_config: str) -> None:
        """Apply a label config: ``label_interface``, and the stored ``label_config`` and
        ``parsed_label_config`` (upstream keeps the parsed one as a JSON string)."""
        from label_studio_sdk._extensions.label_studio_tools.core.label_config import parse_config
        from label_studio_sdk.label_interface import LabelInterface

        self.label_interface = LabelInterface(config=label_config)
        if self.get("label_config") != label_config:
            self.set("label_config", label_config)
            self.set("parsed_label_config", json.dumps(parse_config(label_config)))

    @property
    def label_config(self) -> str | None:
        return self.get("label_config")

    @property
    def parsed_label_config(self) -> dict:
        raw = self.get("parsed_label_config")
        return json.loads(raw) if isinstance(raw, str) else (raw or {})

    def set_extra_params(self, extra_params: Any) -> None:
        self.set("extra_params", extra_params if isinstance(extra_params, str) else json.dumps(extra_params))

    @property
    def extra_params(self) -> dict:
        params = self.get("extra_params")
        if isinstance(params, str):
            return json.loads(params) if params else {}
        return params or {}

    def get_first_tag_occurence(
        self,
        control_type: str | tuple,
        object_type: str | tuple,
        name_filter: Callable | None = None,
        to_name_filter: Callable | None = None,
    ) -> tuple[str, str, str]:
        """(from_name, to_name, data key) of the first control of ``control_type`` that labels
        an object of ``object_type``."""
        return self.label_interface.get_first_tag_occurence(
            control_type=control_type, object_type=object_type, name_filter=name_filter, to_name_filter=to_name_filter
        )

    def build_label_map(self, tag_name: str, names: list[str]) -> dict[str, str]:
        """Model class name -> project label for the control ``tag_name``: by each label's
        ``predicted_values`` first, else by the label's own name, exactly or lower-cased."""
        labels_attrs = self.label_interface.get_control(tag_name).labels_attrs or {}
        model_labels = list(names)
        lowered = {name.lower() for name in model_labels}
        label_map: dict[str, str] = {}
        for ls_label, label_tag in labels_attrs.items():
            matched = False
            for value in (label_tag.attr or {}).get("predicted_values", "").split(","):
                value = value.strip()
                if value and value in model_labels:
                    label_map[value] = ls_label
                    matched = True
            if matched:
                continue
            if ls_label in model_labels:
                label_map[ls_label] = ls_label
            elif ls_label.lower() in lowered:
                label_map[ls_label.lower()] = ls_label
        return label_map

    # -- model version ------------------------------------------------------------------------
    @property
    def model_version(self) -> str | None:
        """The project's current model version (upstream returns a semver.Version when the
        value parses as one; here it is always the string)."""
        version = self.get("model_version")
        return str(version) if version else None

    def bump_model_version(self) -> str:
        """Raise the minor part of the last ``X.Y.Z`` in the version (``v0.0.1`` -> ``v0.1.0``),
        store it and return it."""
        current = self.model_version or self.INITIAL_MODEL_VERSION
        match = _SEMVER.search(current)
        if match is None:
            raise ValueError(
                f"model_version {current!r} has no X.Y.Z part to bump; set one with self.set('model_version', ...)"
            )
        bumped = f"{match.group(1)}.{int(match.group(2)) + 1}.0"
        new = current[: match.start()] + bumped + current[match.end() :]
        logger.debug("bumping model version from %s to %s", current, new)
        self.set("model_version", new)
        return new

    # -- media ----------------------------------------------------------------------------------
    def get_label_studio_access_token(self) -> str | None:
        """The token used for Label Studio: LABEL_STUDIO_API_KEY, else the one /setup sent."""
        return self._values().access_token()

    def get_local_path(
        self,
        url: str,
        project_dir: str | None = None,
        ls_host: str | None = None,
        ls_access_token: str | None = None,
        task_id: int | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> str:
        """A local file with the content behind a task's data value (Label Studio uploads,
        local files, cloud storage through Label Studio, http(s), data: URIs)."""
        return self._values().local_path(url, task_id=task_id, ls_host=ls_host, ls_access_token=ls_access_token)

    def preload_task_data(self, task: dict, value: Any = None, read_file: bool = True) -> Any:
        """``value`` (usually ``task["data"]`` or one of its values) with every file reference
        in it replaced by the file's text (``read_file``) or a local path, recursively through
        dicts (in place) and lists. Anything else, None included, is returned as it is."""
        if isinstance(value, dict):
            for key, item in value.items():
                value[key] = self.preload_task_data(task, item, read_file)
            return value
        if isinstance(value, list):
            return [self.preload_task_data(task, item, read_file) for item in value]
        if isinstance(value, str) and is_preload_needed(value):
            path = self.get_local_path(url=value, task_id=task.get("id"))
            if not read_file:
                return path
            with open(path, "r") as f:  # noqa: UP015 (upstream's call, which model tests assert)
                return f.read()
        return value


__all__ = ["LabelStudioMLBase", "ModelResponse", "PredictionValue"]
