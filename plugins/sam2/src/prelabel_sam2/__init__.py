"""sam2: Segment Anything 2 for Label Studio.

Interactive: KeyPointLabels clicks and a RectangleLabels box on an Image -> one mask, as
BrushLabels (RLE) or PolygonLabels, labelled with the label the annotator clicked with; image
embeddings are cached in memory and on disk, and the ``embed`` job fills the disk cache for a
whole project, so even the first click on an image skips the encoder. Video: the
context's VideoRectangle boxes are propagated through the next frames. Label Studio's SAM tool
events (``params.context.event``) are answered through ``prelabel.sam_events``. Importing this module
stays light: torch and sam2 load in ``setup``.
"""

from __future__ import annotations

from prelabel import hookimpl
from prelabel_sam2.backend import Sam2Backend
from prelabel_sam2.settings import Sam2Settings

__all__ = ["Sam2Backend", "Sam2Settings"]


@hookimpl
def register_backends(register):
    register(Sam2Backend)
