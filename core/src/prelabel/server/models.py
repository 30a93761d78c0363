"""Request bodies, as Label Studio 1.23 sends them (see docs/label-studio-protocol.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    project: str | int = Field(description='"<project id>.<created timestamp>"')
    label_config: str = Field(alias="schema", description="The project's label config XML.")
    hostname: str | None = Field(default=None, description="Label Studio's own URL (its HOST setting).")
    access_token: str | None = Field(default=None, description="The project creator's legacy token.")
    extra_params: dict[str, Any] | None = None


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Items are checked one by one in the endpoint (a malformed task fails alone, and
    # validating hundreds of nested dicts here would cost more than the model call).
    tasks: list[Any] = Field(min_length=1, description="Tasks to predict, each with a data object.",
                             json_schema_extra={"items": {"type": "object", "required": ["data"], "properties": {
                                 "id": {"type": "integer"}, "data": {"type": "object"}}}})
    project: str | int | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = Field(default=None, description="login, password and the interactive context.")


class TrainRequest(BaseModel):
    """The legacy /train body: annotated tasks in export format."""

    model_config = ConfigDict(extra="allow")

    annotations: list[dict[str, Any]] = Field(default_factory=list)
    project: str | int
    label_config: str | None = None
    params: dict[str, Any] | None = None


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: str
    project: dict[str, Any] | None = None


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="predict (pre-annotate the whole project), or train")
    project: str | int
    params: dict[str, Any] = Field(default_factory=dict)


class PredictResponse(BaseModel):
    results: list[dict[str, Any]]
    model_version: str
