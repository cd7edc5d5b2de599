"""The hint propagation engine: wanted colours spread along the photo's lightness, the rest left alone."""

from __future__ import annotations

import numpy as np
import pytest

from colorization.color import rgb_to_lab
from colorization.hints import hint_image, hints_at, propagate


def _two_regions(h: int = 40, w: int = 60) -> np.ndarray:
    l = np.full((h, w), 30.0, np.float32)
    l[:, w // 2 :] = 70.0  # a sharp edge down the middle
    return l


def test_a_hint_colours_its_region_and_stops_at_the_edge():
    l = _two_regions()
    ab = np.zeros(l.shape + (2,), np.float32)
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[18:21, 8:11] = (40.0, 30.0)
    weight[18:21, 8:11] = 1.0
    out = propagate(l, ab, hint_ab, weight)
    assert np.allclose(out[19, 9], (40.0, 30.0), atol=0.5)  # the hinted pixel keeps its colour
    left, right = out[:, :30], out[:, 30:]
    assert np.abs(left - (40.0, 30.0)).max(axis=2).mean() < 8  # spread over its own region ...
    assert np.abs(right).max() < 2  # ... and not across an edge of 40 L units


def test_no_hints_change_nothing_and_far_regions_keep_the_network_colours():
    l = _two_regions()
    rng = np.random.default_rng(0)
    ab = rng.normal(0, 10, l.shape + (2,)).astype(np.float32)
    assert propagate(l, ab, np.zeros_like(ab), np.zeros(l.shape, np.float32)) is ab
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[5, 5], weight[5, 5] = ab[5, 5] + 20, 1.0
    out = propagate(l, ab, hint_ab, weight)
    assert np.allclose(out[:, 40:], ab[:, 40:], atol=0.5)  # the residual, not the colour, is spread


def test_hint_image_points_become_render_resolution_hints():
    hints = hint_image([(100, 50, "#ff0000", 6), (10, 90, (0, 0, 255), 3)], (200, 100))
    assert hints.mode == "RGBA" and hints.size == (200, 100)
    hint_ab, weight = hints_at(hints, (50, 100))  # half resolution
    red_ab = rgb_to_lab(np.array([[1.0, 0.0, 0.0]], np.float32))[0, 1:]
    assert np.allclose(hint_ab[25, 50], red_ab, atol=1.0) and weight[25, 50] == 1.0
    assert weight[0, 0] == 0.0 and (weight > 0).sum() < 0.05 * weight.size
    with pytest.raises(ValueError, match="RGBA"):
        hints_at(np.zeros((10, 10, 3), np.uint8), (5, 5))


def test_the_pipeline_takes_hints_and_is_unchanged_without(colorizer, eval_photos):
    from PIL import Image

    from colorization.hints import hint_image

    photo = Image.open(eval_photos[0]).convert("RGB")
    plain = np.asarray(colorizer(photo, render_size=64)).astype(int)
    assert np.array_equal(plain, np.asarray(colorizer(photo, render_size=64, hints=None)))
    w, h = photo.size
    hints = hint_image([(w // 2, h // 2, "#00c000", 8)], photo.size)
    hinted = np.asarray(colorizer(photo, render_size=64, hints=hints)).astype(int)
    centre = hinted[h // 2 - 3 : h // 2 + 4, w // 2 - 3 : w // 2 + 4]
    green = rgb_to_lab(centre.astype(np.float32) / 255)[..., 1].mean()
    assert green < rgb_to_lab(plain[h // 2 - 3 : h // 2 + 4, w // 2 - 3 : w // 2 + 4].astype(np.float32) / 255)[..., 1].mean() - 10
    # the photo's own L is kept wherever the colour comes from
    l_plain = rgb_to_lab(plain.astype(np.float32) / 255)[..., 0]
    assert np.abs(rgb_to_lab(hinted.astype(np.float32) / 255)[..., 0] - l_plain).mean() < 1.0
    with pytest.raises(ValueError, match="photo's size"):
        colorizer(photo, hints=hint_image([], (w + 1, h)))
