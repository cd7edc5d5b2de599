"""SSIM on images smaller than its 7 x 7 window: the largest odd window that fits (3 or 5), as scikit-image
computes it with that ``win_size``; under 3 pixels on a side SSIM is undefined, so ``ssim`` raises and
``image_metrics`` reports NaN (a colour strip can still be colorized and scored by PSNR)."""

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from colorization.metrics import image_metrics, ssim


def _pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = np.clip(truth.astype(int) + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8)
    return noisy, truth


@pytest.mark.parametrize("shape, window", [((3, 5, 3), 3), ((3, 3, 3), 3), ((4, 9, 3), 3), ((9, 4, 3), 3),
                                           ((5, 5, 3), 5), ((6, 40, 3), 5), ((40, 6, 3), 5), ((7, 7, 3), 7)])
def test_a_small_image_gets_the_largest_odd_window_that_fits(shape, window):
    result, truth = _pair(shape)
    expected = structural_similarity(truth, result, data_range=255, channel_axis=2, win_size=window)
    assert abs(ssim(result, truth) - expected) < 1e-9
    assert ssim(truth, truth) == 1.0
    # not the share of equal pixels the old fallback returned under SSIM's name
    assert abs(ssim(result, truth) - np.mean(result == truth)) > 1e-3


@pytest.mark.parametrize("shape", [(2, 5, 3), (5, 2, 3), (1, 10_000, 3), (10_000, 1, 3), (1, 1, 3)])
def test_under_three_pixels_on_a_side_ssim_is_an_error_and_image_metrics_says_nan(shape):
    result, truth = _pair(shape)
    with pytest.raises(ValueError, match="at least 3"):
        ssim(result, truth)
    with pytest.raises(ValueError, match="at least 3"):
        ssim(truth, truth)  # undefined even for identical images: no window fits
    scores = image_metrics(result, truth)
    assert math.isnan(scores["ssim"])
    assert math.isfinite(scores["psnr"]) and math.isfinite(scores["colorfulness"])
