"""Builders for Label Studio result regions, shared by every plugin.

Pixel coordinates go in; Label Studio's percent coordinates (0-100 of the original image
size) come out. Every builder takes the ``ControlInfo`` it fills, so ``from_name``,
``to_name`` and ``type`` always match the project's config.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prelabel.labelconfig import ControlInfo

if TYPE_CHECKING:
    import numpy as np


# Region ids: 10 hex digits of os.urandom, made 4,096 at a time (one id formatted on its own
# took 0.8 us, a fifth of a Choices region's cost). Ids need only be unique within a task's
# result. ``next`` on a list iterator is one C call, safe from several threads (a backend's
# predict runs in worker threads); two threads refilling at once only waste a batch.
_ID_BATCH = 4096
_id_pool = iter(())


def _refill_ids() -> str:
    global _id_pool
    pool = iter(os.urandom(5 * _ID_BATCH).hex(" ", 5).split())
    _id_pool = pool
    return next(pool)


__all__ = [
    "brush",
    "choices",
    "find_spans",
    "keypoint",
    "mask_to_rle",
    "number",
    "polygon",
    "rating",
    "rectangle",
    "region_id",
    "rle_to_mask",
    "rotated_rectangle",
    "span",
    "taxonomy",
    "textarea",
    "video_rectangle",
]


def region_id() -> str:
    return next(_id_pool, None) or _refill_ids()


def _base(
    control: ControlInfo, value: dict, score: float | None = None, to_name: str | None = None, **extra: Any
) -> dict:
    region = {
        "id": next(_id_pool, None) or _refill_ids(),  # region_id(), inline: a builder runs once per region
        "from_name": control.name,
        "to_name": to_name or control.to_name[0],
        "type": control.type,
        "value": value,
    }
    if score is not None:
        region["score"] = float(score)
    if extra:
        region.update(extra)
    return region


def _labels(labels: str | Sequence[str]) -> list[str]:
    return [labels] if isinstance(labels, str) else list(labels)


def _image_extra(width: int, height: int) -> dict:
    return {"original_width": int(width), "original_height": int(height), "image_rotation": 0}


def _pct(value: float, total: float) -> float:
    return max(0.0, min(100.0, 100.0 * float(value) / float(total)))


def rectangle(
    control: ControlInfo,
    labels: str | Sequence[str],
    x: float,
    y: float,
    w: float,
    h: float,
    image_width: int,
    image_height: int,
    score: float | None = None,
    rotation: float = 0.0,
) -> dict:
    """A box from pixels (top-left ``x, y``, size ``w, h``; ``rotation`` in degrees
    clockwise about the top-left corner, as Label Studio stores it).

    An axis-aligned box is clipped to the image (its part outside is cut off, so the edges
    inside stay where they are). A rotated box keeps its corner and shape, which may lie
    outside the image (a negative ``x``), as Label Studio allows; only what Label Studio
    refuses (a side or corner past 100 %) is capped."""
    rotation = float(rotation) % 360
    if rotation == 0:
        x1, y1 = max(0.0, float(x)), max(0.0, float(y))
        x2, y2 = min(float(image_width), float(x) + float(w)), min(float(image_height), float(y) + float(h))
        value = {
            "x": _pct(x1, image_width),
            "y": _pct(y1, image_height),
            "width": _pct(max(0.0, x2 - x1), image_width),
            "height": _pct(max(0.0, y2 - y1), image_height),
            "rotation": 0.0,
        }
    else:
        value = {
            "x": min(100.0, 100.0 * float(x) / image_width),
            "y": min(100.0, 100.0 * float(y) / image_height),
            "width": _pct(w, image_width),
            "height": _pct(h, image_height),
            "rotation": rotation,
        }
    if control.tag.endswith("Labels"):
        value[control.value_key] = _labels(labels)
    return _base(control, value, score, **_image_extra(image_width, image_height))


def rotated_rectangle(
    control: ControlInfo,
    labels: str | Sequence[str],
    cx: float,
    cy: float,
    w: float,
    h: float,
    angle_rad: float,
    image_width: int,
    image_height: int,
    score: float | None = None,
) -> dict:
    """A rotated box from its centre, size and angle (radians, as OBB models give it)."""
    cos, sin = math.cos(angle_rad), math.sin(angle_rad)
    # top-left corner of the unrotated box, rotated about the centre
    x = cx - (w / 2) * cos + (h / 2) * sin
    y = cy - (w / 2) * sin - (h / 2) * cos
    return rectangle(control, labels, x, y, w, h, image_width, image_height, score, math.degrees(angle_rad))


def polygon(
    control: ControlInfo,
    labels: str | Sequence[str],
    points: Iterable[Sequence[float]],
    image_width: int,
    image_height: int,
    score: float | None = None,
) -> dict:
    """A polygon from pixel points ``[(x, y), ...]``."""
    pts = [[_pct(px, image_width), _pct(py, image_height)] for px, py in points]
    if len(pts) < 3:
        raise ValueError("a polygon needs at least 3 points")
    value: dict[str, Any] = {"points": pts, "closed": True}
    if control.tag.endswith("Labels"):
        value[control.value_key] = _labels(labels)
    return _base(control, value, score, **_image_extra(image_width, image_height))


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """Label Studio brush RLE for a 2-D boolean/0-1/0-255 mask: byte for byte what
    label-studio-sdk's ``mask2rle`` writes (each pixel's value in four RGBA channels, runs of
    equal bytes bit-packed), built with numpy instead of a Python string per run (the sdk took
    1.5 s for a noisy 1280x720 mask, as random weights or fine-grained objects give)."""
    import numpy as np

    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {arr.shape}")
    flat = np.where(arr > (0 if arr.dtype == bool or arr.max() <= 1 else 127), 255, 0).astype(np.uint8).ravel()
    return _encode_rle(flat, channels=4)


# label-studio-sdk converter/brush.py encode_rle: a 53-bit header (the value count in 32 bits,
# the word size minus one in 5, the four run-length field sizes 3, 4, 8, 16 minus one in 4
# each), then per run a token: a flag bit (0: one value, 1: a series), two bits naming the
# field size, the length minus one in that many bits, the value in 8; zero bits up to the next
# byte, a whole zero byte when already aligned.
_RLE_HEADER_SIZES = (3, 4, 8, 16)
_RLE_MAX_RUN = 1 << 16


def _encode_rle(values: np.ndarray, channels: int = 4) -> list[int]:
    import numpy as np

    n = len(values)
    if n == 0:
        starts = np.zeros(0, np.int64)
    else:
        starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    lengths = np.diff(np.append(starts, n)).astype(np.int64) * channels
    runs = values[starts].astype(np.uint32)
    # runs longer than 65,536 go out as 65,536-long tokens and a last one of the rest
    full = np.where(lengths > 256, (lengths - 1) // _RLE_MAX_RUN, 0)
    last = lengths - full * _RLE_MAX_RUN
    reps = full + 1
    length = np.repeat(last, reps)
    if full.any():
        first_of_run = np.cumsum(reps) - reps
        is_full = np.ones(len(length), bool)
        is_full[first_of_run + full] = False
        length[is_full] = _RLE_MAX_RUN
    value = np.repeat(runs, reps)
    ln = length.astype(np.uint32) - 1  # 0 for a single value, whose 3-bit field is 0
    # (flag and size index, bits of the length field) by run length
    single = length == 1
    size3 = (length > 1) & (length <= 8)
    size4 = (length > 8) & (length <= 16)
    size8 = (length > 16) & (length <= 256)
    field = np.select([single, size3, size4, size8], [3, 3, 4, 8], 16).astype(np.uint32)
    head = np.select([single, size3, size4, size8], [0b000, 0b100, 0b101, 0b110], 0b111).astype(np.uint32)
    tokens = (head << (field + 8)) | (ln << 8) | value
    nbits = 3 + field + 8
    # each token's bits, most significant first, in a row of 32; keep the last nbits of each
    as_bytes = tokens.astype(">u4").view(np.uint8).reshape(-1, 4)
    bits = np.unpackbits(as_bytes, axis=1)
    keep = np.arange(32) >= (32 - nbits)[:, None]
    header = f"{n * channels:032b}{8 - 1:05b}" + "".join(f"{size - 1:04b}" for size in _RLE_HEADER_SIZES)
    stream = np.concatenate((np.frombuffer(header.encode(), np.uint8) - ord("0"), bits[keep]))
    pad = 8 - len(stream) % 8
    stream = np.concatenate((stream, np.zeros(pad, np.uint8)))
    return np.packbits(stream).tolist()


def rle_to_mask(rle: list[int], width: int, height: int) -> np.ndarray:
    """Decode Label Studio brush RLE back to a (height, width) uint8 mask (0/255)."""
    import numpy as np
    from label_studio_sdk.converter.brush import decode_rle

    flat = np.asarray(decode_rle(rle), dtype=np.uint8)
    return flat.reshape(height, width, 4)[:, :, 3]


def brush(control: ControlInfo, labels: str | Sequence[str], mask: np.ndarray, score: float | None = None) -> dict:
    """A brush (mask) region, RLE-encoded; the mask's shape is the image size."""
    height, width = mask.shape[:2]
    value: dict[str, Any] = {"format": "rle", "rle": mask_to_rle(mask)}
    value[control.value_key] = _labels(labels)
    return _base(control, value, score, **_image_extra(width, height))


def keypoint(
    control: ControlInfo,
    labels: str | Sequence[str],
    x: float,
    y: float,
    image_width: int,
    image_height: int,
    score: float | None = None,
    width: float = 0.5,
) -> dict:
    """A keypoint at pixel ``(x, y)``."""
    value: dict[str, Any] = {"x": _pct(x, image_width), "y": _pct(y, image_height), "width": width}
    if control.tag.endswith("Labels"):
        value[control.value_key] = _labels(labels)
    return _base(control, value, score, **_image_extra(image_width, image_height))


def span(
    control: ControlInfo, labels: str | Sequence[str], start: int, end: int, text: str, score: float | None = None
) -> dict:
    """A text span by character offsets into the task text (``text`` is that text)."""
    if not 0 <= start < end <= len(text):
        raise ValueError(f"span [{start}, {end}) is outside the text of length {len(text)}")
    value = {"start": int(start), "end": int(end), "text": text[start:end], control.value_key: _labels(labels)}
    return _base(control, value, score)


def find_spans(text: str, needle: str, case_sensitive: bool = False) -> list[tuple[int, int]]:
    """All non-overlapping (start, end) offsets of ``needle`` in ``text``."""
    if not needle:
        return []
    hay, pat = (text, needle) if case_sensitive else (text.lower(), needle.lower())
    found, pos = [], hay.find(pat)
    while pos != -1:
        found.append((pos, pos + len(pat)))
        pos = hay.find(pat, pos + len(pat))
    return found


def choices(control: ControlInfo, selected: str | Sequence[str], score: float | None = None) -> dict:
    """A Choices result (one or several of the control's choices)."""
    # _base, inline: a classifier builds one per task (a 100-task request, 100 of them)
    region = {
        "id": next(_id_pool, None) or _refill_ids(),
        "from_name": control.name,
        "to_name": control.to_name[0],
        "type": control.type,
        "value": {"choices": [selected] if isinstance(selected, str) else list(selected)},
    }
    if score is not None:
        region["score"] = float(score)
    return region


def textarea(control: ControlInfo, text: str | Sequence[str], score: float | None = None) -> dict:
    """A TextArea result; ``text`` is one string or several lines."""
    return _base(control, {"text": _labels(text)}, score)


def rating(control: ControlInfo, value: int, score: float | None = None) -> dict:
    return _base(control, {"rating": int(value)}, score)


def number(control: ControlInfo, value: float, score: float | None = None) -> dict:
    return _base(control, {"number": value}, score)


def taxonomy(control: ControlInfo, paths: Sequence[Sequence[str]], score: float | None = None) -> dict:
    return _base(control, {"taxonomy": [list(p) for p in paths]}, score)


def video_rectangle(
    control: ControlInfo,
    labels: str | Sequence[str],
    frames: Iterable[tuple[int, float, float, float, float]],
    image_width: int,
    image_height: int,
    frames_count: int,
    duration: float | None = None,
    score: float | None = None,
) -> dict:
    """One tracked object as a VideoRectangle sequence.

    ``frames`` holds (frame number starting at 1, x, y, w, h) in pixels; the sequence ends
    (``enabled: false``) at the last frame seen, so Label Studio does not extend it."""
    seq = []
    items = sorted(frames)
    for i, (frame, x, y, w, h) in enumerate(items):
        last = i == len(items) - 1
        nxt = items[i + 1][0] if not last else None
        seq.append(
            {
                "frame": int(frame),
                "enabled": not last and nxt == frame + 1,
                "x": _pct(x, image_width),
                "y": _pct(y, image_height),
                "width": _pct(w, image_width),
                "height": _pct(h, image_height),
                "rotation": 0,
                "time": (frame - 1) * (duration / frames_count) if duration and frames_count else None,
            }
        )
    for item in seq:
        if item["time"] is None:
            item.pop("time")
    value: dict[str, Any] = {"sequence": seq, "framesCount": int(frames_count)}
    if duration:
        value["duration"] = float(duration)
    value["labels"] = _labels(labels)
    return _base(control, value, score)
