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
from prelabel_sam2.masks import mask_region
from prelabel_sam2.model import decode_image, image_digest, load_model
from prelabel_sam2.settings import Sam2Settings, check_installed, check_model_files

# what other plugins may use (grounding_sam builds its masks with these); the rest is sam2's own
__all__ = [
    "Sam2Backend",
    "Sam2Settings",
    "check_installed",
    "check_model_files",
    "decode_image",
    "image_digest",
    "load_model",
    "mask_region",
]


@hookimpl
def register_backends(register):
    register(Sam2Backend)
