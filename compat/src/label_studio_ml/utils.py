"""``label_studio_ml.utils``: helpers for model files (``prelabel.compat.utils``)."""

from prelabel.compat.utils import *  # noqa: F403
from prelabel.compat.utils import __all__  # noqa: F401
