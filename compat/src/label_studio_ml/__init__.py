"""label-studio-ml-backend's ``label_studio_ml`` API, served by prelabel (``prelabel.compat``).

Installed by ``pip install "prelabel[compat]"`` (the ``prelabel-compat`` distribution).
"""

from prelabel.compat.loader import refuse_two_label_studio_ml

refuse_two_label_studio_ml()

from prelabel.compat.base import LabelStudioMLBase  # noqa: E402

#: tells prelabel.compat.loader that this label_studio_ml is prelabel's own
__prelabel_compat__ = True
package_name = "prelabel-compat"
try:
    from importlib.metadata import version as _version

    __version__ = _version(package_name)
except Exception:
    __version__ = "0+unknown"

__all__ = ["LabelStudioMLBase"]
