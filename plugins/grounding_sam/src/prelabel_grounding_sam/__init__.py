"""grounding_sam: text-prompted detection (Grounding DINO) and segmentation (SAM 2).

Pre-annotates whole projects from the project's own labels (each <Label>'s value and its
predicted_values/hint phrases), or from a TextArea prompt typed in interactive use, which is
remembered for the project. Every box or mask carries a project label. RectangleLabels,
BrushLabels and PolygonLabels on Image. Importing this module stays light: torch,
transformers and sam2 load in ``setup``.
"""

from __future__ import annotations

from prelabel import hookimpl
from prelabel_grounding_sam.backend import GroundingSamBackend
from prelabel_grounding_sam.settings import GroundingSamSettings

__all__ = ["GroundingSamBackend", "GroundingSamSettings"]


@hookimpl
def register_backends(register):
    register(GroundingSamBackend)
