"""Hooks outside the plugin contract, for backends that manage versions and jobs themselves.

The label-studio-ml adapter keeps per-project model versions, runs its model's own ``fit`` as
the ``train`` job and decides per webhook event whether to train, so it implements all three;
sam2 adds an ``embed`` job kind through ``JobKinds``. Core checks for each protocol with
``isinstance`` and falls back to its own rules; a plugin's Backend needs none of them.
This module imports nothing from prelabel, so core can check for these without importing
the adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from prelabel.jobs import JobContext
    from prelabel.state import ProjectState

__all__ = ["JobKinds", "ProjectVersions", "TrainsOnEvents"]


@runtime_checkable
class ProjectVersions(Protocol):
    def project_version(self, state: ProjectState, label_config: str | None) -> str | None:
        """The version served for one project, or None to leave it to core (the trained
        version, else ``model_version()``). Called on the event loop: keep it cheap."""


@runtime_checkable
class JobKinds(Protocol):
    def job_handlers(self) -> dict[str, Callable[[JobContext], dict]]:
        """Job kinds the backend adds, or replaces (``train``): kind -> function(job) -> result.
        Called once, when the Runtime is built."""


@runtime_checkable
class TrainsOnEvents(Protocol):
    def train_on_event(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Called by /webhook for each event of a trainable backend: job params to queue a
        ``train`` job for this event, or None to leave it to core's rules (START_TRAINING, and
        TRAIN_EVERY_N annotation events)."""
