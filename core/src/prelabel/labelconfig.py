"""Label config parsing: controls, objects and label mapping, built on label-studio-sdk.

A config is parsed once per distinct XML (a bounded cache keyed by the text, so by its hash);
everything a plugin needs to know about a control (its labels, its attributes, which object it
labels and which task data key feeds that object) is precomputed here.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

log = logging.getLogger(__name__)

# Control tags whose result value is a list of label names under the lower-cased tag.
LABEL_VALUE_TAGS = {
    "Labels",
    "RectangleLabels",
    "PolygonLabels",
    "BrushLabels",
    "KeyPointLabels",
    "EllipseLabels",
    "HyperTextLabels",
    "ParagraphLabels",
    "TimeSeriesLabels",
    "VideoRectangle",
    "Choices",
}
_VALUE_KEY = {
    "Choices": "choices",
    "TextArea": "text",
    "Rating": "rating",
    "Number": "number",
    "Taxonomy": "taxonomy",
    "DateTime": "datetime",
    "Ranker": "ranker",
}


class LabelConfigError(ValueError):
    """The label config is not valid XML or not a Label Studio config."""


@dataclass(frozen=True)
class ObjectInfo:
    """An object tag (Image, Text, Video, ...) and the task data key it reads."""

    name: str
    tag: str
    value: str

    @property
    def data_key(self) -> str | None:
        """``text`` for ``value="$text"``; None for a literal value."""
        return self.value[1:] if self.value.startswith("$") else None


@dataclass(frozen=True)
class ControlInfo:
    """A control tag with its labels, attributes and target objects."""

    name: str
    tag: str
    to_name: tuple[str, ...]
    objects: tuple[ObjectInfo, ...]
    labels: tuple[str, ...]
    attrs: dict[str, str] = field(hash=False, compare=False)
    label_attrs: dict[str, dict[str, str]] = field(hash=False, compare=False)

    @cached_property
    def label_set(self) -> frozenset[str]:
        return frozenset(self.labels)

    @cached_property  # read by a region builder for every region
    def type(self) -> str:
        """The result ``type`` Label Studio expects (``rectanglelabels``, ``choices``...)."""
        return self.tag.lower()

    @cached_property
    def value_key(self) -> str:
        """The key inside a result's ``value`` that carries this control's output."""
        return _VALUE_KEY.get(self.tag, self.tag.lower())

    @property
    def object(self) -> ObjectInfo:
        """The first object this control labels."""
        return self.objects[0]

    @property
    def is_multiple(self) -> bool:
        return self.attrs.get("choice", "single") == "multiple"

    def attr(self, name: str, default: Any = None, cast: type = str) -> Any:
        """A control attribute converted with ``cast``; ``default`` when absent or invalid."""
        raw = self.attrs.get(name)
        if raw is None:
            return default
        if cast is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        try:
            return cast(raw)
        except (TypeError, ValueError):
            log.warning("control %s: attribute %s=%r is not a %s", self.name, name, raw, cast.__name__)
            return default

    @property
    def score_threshold(self) -> float | None:
        """``model_score_threshold`` on the control, if set."""
        return self.attr("model_score_threshold", None, float)

    @cached_property
    def label_map(self) -> dict[str, str]:
        """Lower-cased model class name -> project label.

        Each label maps from its own value and from every name in its ``predicted_values``
        (a comma-separated list), so a model's ``car`` can become the project's ``Vehicle``.
        """
        mapping: dict[str, str] = {}
        for label in self.labels:
            mapping.setdefault(label.lower(), label)
        for label in self.labels:
            extra = self.label_attrs.get(label, {}).get("predicted_values", "")
            for name in extra.split(","):
                if name.strip():
                    mapping[name.strip().lower()] = label
        return mapping

    def map_label(self, model_name: str) -> str | None:
        """The project label for a model's class name, or None when the project has none."""
        return self.label_map.get(str(model_name).strip().lower())

    def hints(self, label: str) -> list[str]:
        """Phrases describing ``label``: its value, ``predicted_values`` and ``hint``."""
        attrs = self.label_attrs.get(label, {})
        phrases = [label]
        phrases += [p.strip() for p in attrs.get("predicted_values", "").split(",") if p.strip()]
        if attrs.get("hint"):
            phrases.append(attrs["hint"].strip())
        return list(dict.fromkeys(phrases))


@dataclass(frozen=True)
class ParsedConfig:
    """A parsed label config: its controls and objects, plus the sdk's LabelInterface."""

    xml: str
    hash: str
    controls: tuple[ControlInfo, ...]
    objects: tuple[ObjectInfo, ...]
    interface: Any = field(hash=False, compare=False, repr=False)
    by_name: dict[str, ControlInfo] = field(default_factory=dict, hash=False, compare=False, repr=False)

    checks: dict[str, tuple] = field(default_factory=dict, hash=False, compare=False, repr=False)
    # matching()'s answers by the supports mapping they were worked out for (a backend's
    # predict asks on every call, through supported_controls)
    _matched: dict[int, tuple] = field(default_factory=dict, hash=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update({c.name: c for c in self.controls})
        # per control: (allowed to_names, value key whose labels are checked or None, allowed labels)
        for c in self.controls:
            checked = c.tag in LABEL_VALUE_TAGS and bool(c.labels)
            self.checks[c.name] = (frozenset(c.to_name), c.value_key if checked else None, c.label_set)

    def control(self, name: str) -> ControlInfo | None:
        return self.by_name.get(name)

    def find(self, control_tags: Iterable[str], object_tags: Iterable[str] | None = None) -> list[ControlInfo]:
        """Controls with one of ``control_tags`` that label an object of ``object_tags``."""
        ctags, otags = set(control_tags), set(object_tags) if object_tags is not None else None
        return [
            c for c in self.controls if c.tag in ctags and (otags is None or any(o.tag in otags for o in c.objects))
        ]

    def matching(self, supports: Mapping[str, Collection[str]]) -> list[ControlInfo]:
        """Controls whose (control tag, object tag) pair is in ``supports`` (control tag ->
        object tags), without those marked ``model_skip="true"`` (left to the annotators)."""
        hit = self._matched.get(id(supports))
        if hit is not None and hit[0] is supports:
            return list(hit[1])
        found = [
            c
            for c in self.controls
            if c.tag in supports
            and any(o.tag in supports[c.tag] for o in c.objects)
            and not c.attr("model_skip", False, bool)
        ]
        if type(supports) is dict and all(type(v) is frozenset for v in supports.values()):
            # kept for the form Backend.supports takes (a class's dict of frozensets, set once);
            # any other mapping is worked out every time
            if len(self._matched) >= 64:
                self._matched.clear()
            self._matched[id(supports)] = (supports, tuple(found))
        return found

    def first(self, control_tags: Iterable[str], object_tags: Iterable[str] | None = None) -> ControlInfo | None:
        found = self.find(control_tags, object_tags)
        return found[0] if found else None

    def describe(self) -> str:
        """``Choices on Text, RectangleLabels on Image`` for error messages."""
        parts = [f"{c.tag} on {'/'.join(o.tag for o in c.objects) or '?'}" for c in self.controls]
        return ", ".join(parts) or "no control tags"

    def sanitize(self, result: list[dict]) -> tuple[list[dict], list[str]]:
        """Drop regions that name no control of this config, or labels the project lacks.

        Returns the kept regions and one message per dropped item. Label Studio would store a
        region with an unknown label as-is and show it broken, so they never get through.
        """
        kept: list[dict] = []
        problems: list[str] = []
        checks = self.checks
        for region in result:
            # the common case first, in as few lookups as it takes (it runs once per region of
            # every task: a 100-task /predict checks 100+ regions)
            if type(region) is dict:
                name = region.get("from_name")
                check = checks.get(name) if type(name) is str else None
                if check is not None:
                    to_names, key, allowed = check
                    if region.get("to_name") in to_names:
                        if key is None:
                            kept.append(region)
                            continue
                        value = region.get("value")
                        if type(value) is not dict or key not in value:
                            kept.append(region)
                            continue
                        labels = value[key]
                        if type(labels) is list and allowed.issuperset(labels):
                            kept.append(region)
                            continue
            region = self._sanitize_one(region, problems)
            if region is not None:
                kept.append(region)
        return kept, problems

    def _sanitize_one(self, region: Any, problems: list[str]) -> dict | None:
        """A region the fast path in :meth:`sanitize` did not keep as-is: the region to keep
        (its bad labels removed), or None; what is wrong goes to ``problems``."""
        if type(region) is not dict:
            problems.append(f"region {region!r} is not an object")
            return None
        name = region.get("from_name")
        check = self.checks.get(name) if isinstance(name, str) else None
        if check is None:
            problems.append(f"region names from_name={name!r}, not a control of this config")
            return None
        to_names, key, allowed = check
        if region.get("to_name") not in to_names:
            problems.append(f"region to_name={region.get('to_name')!r} is not a target of {name}")
            return None
        value = region.get("value")
        if key is not None and type(value) is dict and key in value:
            labels = value[key]
            if type(labels) is not list:
                problems.append(f"{name}: {key} must be a list, got {labels!r}")
                return None
            if not allowed.issuperset(labels):
                good = [lab for lab in labels if lab in allowed]
                bad = [lab for lab in labels if lab not in allowed]
                problems.append(f"{name}: labels {bad} are not in the project's labels")
                if not good:
                    return None
                region = {**region, "value": {**value, key: good}}
        return region


def config_hash(xml: str) -> str:
    return hashlib.sha256(xml.encode("utf-8")).hexdigest()[:16]


class _ConfigCache:
    """Parsed configs by XML text, bounded by count and by the total size of the texts (a
    parsed config costs memory in proportion to its text: a 10,000-choice config is ~15 MB
    parsed, so a count bound alone let 256 forged ones hold gigabytes)."""

    def __init__(self, max_items: int = 256, max_chars: int = 2_000_000):
        self.max_items, self.max_chars = max_items, max_chars
        self._items: OrderedDict[str, ParsedConfig] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, xml: str) -> ParsedConfig | None:
        with self._lock:
            found = self._items.get(xml)
            if found is not None:
                self._items.move_to_end(xml)
            return found

    def put(self, xml: str, parsed: ParsedConfig) -> None:
        if len(xml) > self.max_chars:
            return  # too big to keep: parsed for this request only
        with self._lock:
            if xml in self._items:
                return
            self._items[xml] = parsed
            self._chars += len(xml)
            while len(self._items) > self.max_items or self._chars > self.max_chars:
                old, _ = self._items.popitem(last=False)
                self._chars -= len(old)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def chars(self) -> int:
        return self._chars


CONFIG_CACHE = _ConfigCache()


def parse_label_config(xml: str) -> ParsedConfig:
    """Parse a label config once; later calls with the same text hit the cache."""
    if not isinstance(xml, str):
        raise LabelConfigError(f"the label config must be an XML string, not {type(xml).__name__}")
    if len(xml) > CONFIG_CACHE.max_chars:
        raise LabelConfigError(
            f"the label config is {len(xml):,} characters long; the most a backend parses is "
            f"{CONFIG_CACHE.max_chars:,} (a config this size also stalls Label Studio's editor)"
        )
    found = CONFIG_CACHE.get(xml)
    if found is None:
        found = _parse(xml)
        CONFIG_CACHE.put(xml, found)
    return found


OFF_LOOP_CHARS = 32_000  # a config this long is parsed in a worker thread (tens of ms and up)


async def warm_label_config(xml: object) -> None:
    """Parse a long, not yet cached config in a worker thread, so that the request's own
    (synchronous) parse hits the cache and the event loop keeps answering /health meanwhile:
    a 150,000-choice config takes seconds to parse. Errors surface in the request's own parse."""
    if isinstance(xml, str) and OFF_LOOP_CHARS < len(xml) <= CONFIG_CACHE.max_chars and CONFIG_CACHE.get(xml) is None:
        import anyio.to_thread

        try:
            await anyio.to_thread.run_sync(parse_label_config, xml)
        except LabelConfigError:
            pass


def _parse(xml: str) -> ParsedConfig:
    if not xml.strip():
        raise LabelConfigError("the label config is empty")
    try:
        from label_studio_sdk.label_interface import LabelInterface

        interface = LabelInterface(xml)
    except Exception as exc:
        raise LabelConfigError(f"the label config is not valid: {exc}") from exc
    objects = tuple(ObjectInfo(name=o.name, tag=o.tag, value=str(o.value or "")) for o in interface.objects)
    by_name = {o.name: o for o in objects}
    controls = []
    for c in interface.controls:
        to_names = tuple(c.to_name or ())
        labels = tuple(getattr(c, "labels", None) or ())
        label_attrs = {name: dict(tag.attr or {}) for name, tag in (getattr(c, "labels_attrs", None) or {}).items()}
        controls.append(
            ControlInfo(
                name=c.name,
                tag=c.tag,
                to_name=to_names,
                objects=tuple(by_name[n] for n in to_names if n in by_name),
                labels=labels,
                attrs=dict(c.attr or {}),
                label_attrs=label_attrs,
            )
        )
    return ParsedConfig(xml=xml, hash=config_hash(xml), controls=tuple(controls), objects=objects, interface=interface)
