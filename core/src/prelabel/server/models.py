"""Request bodies, as Label Studio 1.23 sends them (see docs/label-studio-protocol.md)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

#: Label Studio's deepest bodies (an export-format task with annotations and region values)
#: nest about eight levels; far deeper is an attack on the recursion of whatever reads it next.
MAX_JSON_DEPTH = 64
MAX_PROJECT_KEY = 256


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON) nests lists and objects more than ``limit`` levels."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item if type(item) is list else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def project_key_problem(key: Any) -> str | None:
    """What is wrong with a project key or id from a request, or None. Label Studio sends
    ``"<id>.<created timestamp>"`` or the integer id; anything else is refused here, before it
    becomes a state key."""
    if key is None or type(key) is int:
        return None
    if type(key) is not str:
        return f"must be a string or an integer, got {type(key).__name__}"
    if len(key) > MAX_PROJECT_KEY:
        return f"is {len(key)} characters long; at most {MAX_PROJECT_KEY}"
    if not key.isprintable():
        return "contains control or unprintable characters"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def _check_project(value: Any) -> Any:
    problem = project_key_problem(value)
    if problem:
        raise ValueError(f"the project id {problem}")
    return value


ProjectKey = Annotated[str | int, AfterValidator(_check_project)]


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    project: ProjectKey = Field(description='"<project id>.<created timestamp>"')
    label_config: str = Field(alias="schema", description="The project's label config XML.")
    hostname: str | None = Field(default=None, description="Label Studio's own URL (its HOST setting).")
    access_token: str | None = Field(default=None, description="The project creator's legacy token.")
    extra_params: dict[str, Any] | None = None


class PredictRequest(BaseModel):
    """Documents the /predict body; the endpoint checks it by hand (see server/app.py)."""

    model_config = ConfigDict(extra="allow")

    # Items are checked one by one in the endpoint (a malformed task fails alone, and
    # validating hundreds of nested dicts here would cost more than the model call).
    tasks: list[Any] = Field(
        min_length=1,
        description="Tasks to predict, each with a data object.",
        json_schema_extra={
            "items": {
                "type": "object",
                "required": ["data"],
                "properties": {"id": {"type": "integer"}, "data": {"type": "object"}},
            }
        },
    )
    project: str | int | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = Field(default=None, description="login, password and the interactive context.")


class TrainRequest(BaseModel):
    """The legacy /train body: annotated tasks in export format."""

    model_config = ConfigDict(extra="allow")

    # each item is checked to be an object by the route, a slice at a time (pydantic checking
    # 200,000 nested objects held the event loop for half a second)
    annotations: list[Annotated[Any, WithJsonSchema({"type": "object"})]] = Field(default_factory=list)
    project: ProjectKey
    label_config: str | None = None
    params: dict[str, Any] | None = None


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: str
    project: dict[str, Any] | None = None

    @field_validator("project")
    @classmethod
    def _project_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        pid = value.get("id")
        if pid is not None:
            if type(pid) not in (int, str):
                raise ValueError(f"project.id must be an integer or a string, got {type(pid).__name__}")
            _check_project(pid)
        config = value.get("label_config")
        if config is not None and type(config) is not str:
            raise ValueError(
                f"project.label_config must be a string (the label config XML), got {type(config).__name__}"
            )
        return value


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="predict (pre-annotate the whole project), or train")
    project: ProjectKey
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _no_reserved_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(k for k in value if k.startswith("_"))
        if reserved:  # core keeps its own bookkeeping (the project lock) under such keys
            raise ValueError(f"params keys starting with '_' are reserved: {', '.join(reserved)}")
        return value

    @field_validator("params")
    @classmethod
    def _dry_run_sample(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "dry_run" in value and not isinstance(value["dry_run"], bool):
            raise ValueError(f"dry_run must be true or false, got {value['dry_run']!r}")
        if value.get("dry_run"):
            from prelabel.dryrun import sample_size

            sample_size(value)  # a bad sample is a 422 now, not a failed job later
        return value


class PredictResponse(BaseModel):
    results: list[dict[str, Any]]
    model_version: str
