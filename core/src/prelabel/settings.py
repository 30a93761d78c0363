"""Settings read from the environment: the core's own, and the base class for plugins'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from prelabel.redact import register_settings_secrets

# Longer than clients' idle pools (Label Studio's requests session, load balancers' 60 s): a
# server that closes an idle keep-alive connection first races the client's next request on it.
KEEP_ALIVE_SECONDS = 75


class BackendSettings(BaseSettings):
    """Base for a plugin's settings. Fields are read from environment variables of the same
    name (case-insensitive); passing an unknown keyword is an error, so typos fail loudly."""

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, populate_by_name=True)

    # core reads these two (``Backend.limits``); None is the backend class's default. A plugin
    # may redeclare them with its own environment name as a validation alias.
    max_batch_size: int | None = Field(None, ge=1, description="Tasks per predict call (default: the backend's).")
    max_concurrency: int | None = Field(
        None, ge=1, description="Predict calls at once per process (default: the backend's)."
    )

    def model_post_init(self, context: Any) -> None:
        register_settings_secrets(self)  # API keys are masked in every log line and error


def _default_home() -> Path:
    return Path.home() / ".prelabel"


class CoreSettings(BaseSettings):
    """Settings every backend shares (server, Label Studio access, media, state, jobs)."""

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, populate_by_name=True)

    prelabel_home: Path = Field(default_factory=_default_home, description="State, models, caches.")
    label_studio_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST", "label_studio_url"),
        description="Base URL of Label Studio; else the hostname /setup sent.",
    )
    label_studio_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN", "label_studio_api_key"),
        description="Personal access token (JWT) or legacy token; else the token /setup sent.",
    )
    local_files_document_root: Path | None = None
    redis_url: str | None = None
    basic_auth_user: str | None = None
    basic_auth_pass: SecretStr | None = None
    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json or text")
    media_max_bytes: int = 200 * 1024 * 1024
    media_timeout: float = 30.0
    media_cache_max_bytes: int = 2 * 1024 * 1024 * 1024
    ls_api_max_bytes: int = Field(
        default=1024 * 1024 * 1024, description="Largest Label Studio API response (after decoding), e.g. an export."
    )
    media_max_pixels: int = Field(default=100_000_000, description="Largest image (width x height) decoded.")
    max_inflight: int = Field(default=64, description="Concurrent /predict requests per process.")
    max_body_bytes: int = Field(default=64 * 1024 * 1024, description="Largest accepted request body.")
    train_every_n: int = Field(default=0, description="Train after every N new annotations (0: off).")
    store_empty_predictions: bool = Field(
        default=False,
        description="Let Label Studio store a task's empty prediction (a tab with no regions, "
        "which makes Retrieve Predictions skip the task for this model version).",
    )
    job_runner: str = Field(default="auto", description="auto (rq when REDIS_URL is set), inprocess or rq.")

    def model_post_init(self, context: Any) -> None:
        register_settings_secrets(self)

    @property
    def state_path(self) -> Path:
        return self.prelabel_home / "state.sqlite3"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass)
