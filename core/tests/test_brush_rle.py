"""prelabel.regions.mask_to_rle writes what label-studio-sdk's mask2rle writes, byte for byte
(the sdk is what Label Studio's converters and upstream backends use; its decoder and the
labeling UI read the same format), on masks whose runs hit every field size: single values,
runs up to 8, 16, 256, 65,536 and longer."""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.converter.brush import encode_rle, mask2rle

from prelabel.regions import _encode_rle, mask_to_rle, rle_to_mask

RNG = np.random.default_rng(7)


def masks() -> list[np.ndarray]:
    out = []
    for h, w in [(1, 1), (1, 2), (3, 5), (7, 9), (64, 64), (100, 700)]:
        box = np.zeros((h, w), bool)
        box[h // 4 : 3 * h // 4, w // 5 : 4 * w // 5] = True
        out += [np.zeros((h, w), bool), np.ones((h, w), bool), RNG.random((h, w)) > 0.5, RNG.random((h, w)) > 0.97, box]
    frame = np.zeros((720, 1280), bool)
    frame[100:400, 200:900] = True
    out.append(frame)
    half = np.zeros((1000, 1000), bool)
    half[500:] = True  # runs of 2,000,000 values: 30 tokens of 65,536 and a rest
    return [*out, half]


@pytest.mark.parametrize("mask", masks(), ids=lambda m: f"{m.shape[0]}x{m.shape[1]}-{m.mean():.2f}")
def test_a_mask_is_encoded_as_the_sdk_encodes_it(mask):
    expected = mask2rle(np.where(mask, 255, 0).astype(np.uint8))
    assert mask_to_rle(mask) == expected
    assert mask_to_rle(mask.astype(np.uint8)) == expected  # 0/1 masks too
    h, w = mask.shape
    assert np.array_equal(rle_to_mask(expected, w, h) > 0, mask)


def test_any_byte_values_and_single_value_runs_are_encoded_as_the_sdk_encodes_them():
    for _ in range(100):
        values = RNG.integers(0, 4, int(RNG.integers(1, 300))).astype(np.uint8)
        values = np.repeat(values, RNG.integers(1, 400, len(values)))
        assert _encode_rle(values, channels=1) == encode_rle(values)


def test_a_mask_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D"):
        mask_to_rle(np.zeros((2, 2, 2), bool))
