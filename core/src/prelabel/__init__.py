"""prelabel: Label Studio ML backends as plugins.

The public API plugin authors use; everything else is internal and may change.
"""

from prelabel.backend import Backend, PredictContext, Prediction, Project, Task, TaskError
from prelabel.hookspecs import hookimpl
from prelabel.jobs import Job, JobCancelled, JobContext
from prelabel.labelconfig import ControlInfo, LabelConfigError, ObjectInfo, ParsedConfig, parse_label_config
from prelabel.media import MediaError, MediaFetcher
from prelabel.plugins import make_plugin_manager
from prelabel.settings import BackendSettings, CoreSettings

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendSettings",
    "ControlInfo",
    "CoreSettings",
    "Job",
    "JobCancelled",
    "JobContext",
    "LabelConfigError",
    "MediaError",
    "MediaFetcher",
    "ObjectInfo",
    "ParsedConfig",
    "PredictContext",
    "Prediction",
    "Project",
    "Task",
    "TaskError",
    "hookimpl",
    "make_plugin_manager",
    "parse_label_config",
    "__version__",
]
