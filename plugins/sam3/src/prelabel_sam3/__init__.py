"""sam3: Segment Anything 3 (concept segmentation) for Label Studio.

Batch: every label of the project's BrushLabels, PolygonLabels and RectangleLabels controls
is a text prompt (its value, its predicted_values synonyms, or its hint/prompt attribute for
coded names), and every instance found becomes a region of that label, one per object.
Interactive: a smart box is an exemplar of its label (Alt: a negative one), smart clicks
segment one object. Video: each label's objects are tracked as VideoRectangle sequences.
Label Studio's SAM events (capabilities, prewarm, predict, track...) are answered too.
Importing this module stays light: torch and transformers load in ``setup``.
"""

from __future__ import annotations

from prelabel import hookimpl
from prelabel_sam3.backend import Sam3Backend
from prelabel_sam3.settings import Sam3Settings

__all__ = ["Sam3Backend", "Sam3Settings"]


@hookimpl
def register_backends(register):
    register(Sam3Backend)
