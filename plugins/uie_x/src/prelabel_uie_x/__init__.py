"""uie_x: PaddleNLP UIE / UIE-X information extraction for Label Studio.

Labels spans on Text and RectangleLabels boxes on document images (OCR by rapidocr, then
UIE-X), prompted with the project's labels; fine-tunes on the project's annotations; and
serves ``POST /v1/extract`` for direct use. Importing this module stays light: paddle,
paddlenlp and rapidocr load in ``setup``.
"""

from __future__ import annotations

from prelabel import hookimpl
from prelabel_uie_x.backend import UieBackend
from prelabel_uie_x.settings import UieSettings

__all__ = ["UieBackend", "UieSettings"]


@hookimpl
def register_backends(register):
    register(UieBackend)
