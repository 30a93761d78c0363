"""prelabel: Label Studio ML backends as plugins.

The public API plugin authors use: this module, and the modules named in ``PUBLIC_MODULES``
(each with a pinned ``__all__``). Everything else is internal and may change; a test checks
that no plugin imports it.
"""

from prelabel.backend import Backend, PredictContext, Prediction, Project, Task, TaskError
from prelabel.hookspecs import PluginError, hookimpl
from prelabel.imageio import exif_orientation, image_array, open_image
from prelabel.jobs import Job, JobCancelled, JobContext
from prelabel.labelconfig import ControlInfo, LabelConfigError, ObjectInfo, ParsedConfig, parse_label_config
from prelabel.lrucache import LruCache, lookup_counter
from prelabel.media import MediaError, MediaFetcher
from prelabel.paths import PathEscapeError, resolve_under
from prelabel.plugins import make_plugin_manager
from prelabel.settings import BackendSettings, CoreSettings

__version__ = "0.1.0"

#: modules besides this one that plugins may import: result builders, the test kit, the LLM
#: engine LLM plugins subclass, and the answering of Label Studio's SAM tool events
PUBLIC_MODULES = ("prelabel.regions", "prelabel.testing", "prelabel.llm", "prelabel.sam_events")

__all__ = [
    "Backend",
    "BackendSettings",
    "ControlInfo",
    "CoreSettings",
    "Job",
    "JobCancelled",
    "JobContext",
    "LabelConfigError",
    "LruCache",
    "MediaError",
    "MediaFetcher",
    "ObjectInfo",
    "ParsedConfig",
    "PathEscapeError",
    "PluginError",
    "PredictContext",
    "Prediction",
    "Project",
    "Task",
    "TaskError",
    "exif_orientation",
    "hookimpl",
    "lookup_counter",
    "image_array",
    "make_plugin_manager",
    "open_image",
    "parse_label_config",
    "resolve_under",
    "__version__",
]
