"""The errors of task media: fetching it (MediaError) and decoding it (ImageRejected). A
module of its own so that the fetcher and the image decoder can both raise them."""

from __future__ import annotations

from prelabel.backend import TaskError


class MediaError(TaskError):
    """A task's media could not be fetched; the message says why and what to set."""


class ImageRejected(MediaError):
    """The file is not a decodable image, or is larger than allowed."""
