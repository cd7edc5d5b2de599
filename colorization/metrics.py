"""PSNR, SSIM (scikit-image's definitions, on uint8 RGB) and colourfulness (Hasler and Suesstrunk 2003).

The sums behind each metric are exact integers, computed with OpenCV (SSIM in bands of rows, on torch's
threads); tests hold the results to scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity``.
"""

from __future__ import annotations

import math
from typing import Iterable

import cv2
import numpy as np

from .parallel import FAST_RUN, in_runs

__all__ = ["psnr", "ssim", "colorfulness", "image_metrics", "constant_ab_baseline", "constant_ab_image"]

_SQUARES = (np.arange(256) ** 2).astype(np.uint16)[None]  # cv2.LUT table: x -> x^2 (fits 16 bits)
_K1, _K2 = 0.01, 0.03  # SSIM's constants (Wang et al. 2004, as scikit-image)


def _uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return np.ascontiguousarray(image)  # OpenCV needs contiguous rows (a permuted tensor's view is not)


def _pair(result: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if result.shape != truth.shape:
        raise ValueError(f"images differ in shape: {result.shape} and {truth.shape}")
    return _uint8(result), _uint8(truth)


def psnr(result: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB between two uint8 RGB images (data range 255); identical images give inf."""
    result, truth = _pair(result, truth)
    # An integer, as the float64 sum of scikit-image's mean is (OpenCV's double carries rounding: round it).
    squared_error = round(cv2.norm(result, truth, cv2.NORM_L2SQR))
    if squared_error == 0:
        return math.inf
    return float(10 * np.log10(255.0**2 / (squared_error / truth.size)))


def _ssim_sum(x: np.ndarray, y: np.ndarray, win: int, rows: int) -> float:
    """Sum of the SSIM map over ``rows`` rows, from the (rows + win - 1, W, C) uint8 input rows they need.

    scikit-image's map (uniform window, sample covariance, borders cropped) with its means and variances
    multiplied out by the window size n: every window sum and product is an exact int32, so nothing cancels.
    """
    n = win * win
    c1 = (_K1 * 255) ** 2 * n * n  # the constants scaled like the integer terms
    c2 = (_K2 * 255) ** 2 * n * (n - 1)
    cols = x.shape[1] - win + 1

    def window_sums(image: np.ndarray) -> np.ndarray:  # (rows, cols, C) int32, each window whole
        sums = cv2.boxFilter(image, cv2.CV_32S, (win, win), anchor=(0, 0), normalize=False,
                             borderType=cv2.BORDER_CONSTANT)
        return sums[:rows, :cols]

    sx, sy = window_sums(x), window_sums(y)
    covariance = window_sums(np.multiply(x, y, dtype=np.uint16))
    spread = window_sums(cv2.LUT(cv2.absdiff(x, y), _SQUARES))  # sum of (x - y)^2
    means = sx * sy  # n^2 ux uy
    mean_gap = sx - sy
    mean_gap *= mean_gap  # n^2 (ux - uy)^2
    covariance *= n
    covariance -= means  # n (n - 1) vxy
    spread *= n
    spread -= mean_gap  # n (n - 1) (vx + vy - 2 vxy)
    # SSIM = (2 ux uy + C1) (2 vxy + C2) / ((ux^2 + uy^2 + C1) (vx + vy + C2)), each factor times n^2 or n (n - 1).
    a1 = cv2.addWeighted(means, 2.0, means, 0.0, c1, dtype=cv2.CV_64F)
    b1 = cv2.addWeighted(means, 2.0, mean_gap, 1.0, c1, dtype=cv2.CV_64F)
    a2 = cv2.addWeighted(covariance, 2.0, covariance, 0.0, c2, dtype=cv2.CV_64F)
    b2 = cv2.addWeighted(covariance, 2.0, spread, 1.0, c2, dtype=cv2.CV_64F)
    ssim_map = cv2.divide(a1, b1)
    ssim_map *= cv2.divide(a2, b2)
    return float(ssim_map.sum())


def ssim(result: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM over the colour channels of two uint8 (H, W, C) images (data range 255).

    scikit-image's ``structural_similarity(truth, result, data_range=255, channel_axis=2, win_size=7)``; an
    image under 7 pixels on a side gets the largest odd window that fits, and one under 3 a ValueError.
    """
    result, truth = _pair(result, truth)
    side = min(truth.shape[:2])
    if side < 3:
        raise ValueError(f"SSIM needs images at least 3 pixels on a side, got {truth.shape[1]}x{truth.shape[0]}")
    win = min(7, side if side % 2 else side - 1)
    rows = truth.shape[0] - win + 1
    band = max(1, FAST_RUN // truth.shape[1])  # output rows per task

    def run(start: int, stop: int) -> float:
        return _ssim_sum(truth[start : stop + win - 1], result[start : stop + win - 1], win, stop - start)

    total = math.fsum(in_runs(run, rows, band))
    return total / (rows * (truth.shape[1] - win + 1) * truth.shape[2])


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness of a uint8 RGB image (0 = gray, about 30-60 = vivid)."""
    rgb = _uint8(rgb)
    n = rgb.shape[0] * rgb.shape[1]
    if n == 0:
        return math.nan
    r, g, b = cv2.split(rgb)[:3]
    # rg = r - g and yb = (r + g) / 2 - b; 2 yb = (r - b) + (g - b), so the sums of squares follow from
    # those of the three channel differences. All are exact integers; so are the variances until the division.
    sum_r, sum_g, sum_b = (round(s) for s in cv2.sumElems(rgb)[:3])
    sq_rg, sq_rb, sq_gb = (round(cv2.norm(u, v, cv2.NORM_L2SQR)) for u, v in ((r, g), (r, b), (g, b)))
    sum_rg, sum_yb2 = sum_r - sum_g, sum_r + sum_g - 2 * sum_b
    var_rg = (n * sq_rg - sum_rg**2) / n**2
    var_yb = (n * (2 * sq_rb + 2 * sq_gb - sq_rg) - sum_yb2**2) / (4 * n**2)
    return math.sqrt(var_rg + var_yb) + 0.3 * math.hypot(sum_rg / n, sum_yb2 / (2 * n))


def image_metrics(result: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and colourfulness of ``result`` against ``truth`` (uint8 RGB, same shape).

    SSIM is NaN for an image under 3 pixels on a side, where no window fits.
    """
    small = min(truth.shape[:2]) < 3
    return {"psnr": psnr(result, truth), "ssim": math.nan if small else ssim(result, truth),
            "colorfulness": colorfulness(result)}


def constant_ab_baseline(truths: Iterable[np.ndarray]) -> tuple[float, float]:
    """The single (a, b) that best fits a set of uint8 RGB photos: the mean a and b over all their pixels, the
    constant with the least squared ab error. A gain over gray that this tint also gets says little of a model."""
    from .color import rgb_to_lab

    total, pixels = np.zeros(2), 0
    for truth in truths:
        ab = rgb_to_lab(_uint8(truth).astype(np.float32) / 255.0)[..., 1:].reshape(-1, 2)
        total += ab.sum(axis=0, dtype=np.float64)
        pixels += len(ab)
    if not pixels:
        raise ValueError("no pixels to fit a constant ab to")
    return float(total[0] / pixels), float(total[1] / pixels)


def constant_ab_image(truth: np.ndarray, ab: tuple[float, float]) -> np.ndarray:
    """A photo's own L with one ``ab`` on every pixel, displayed as every result is (gamut fit, uint8 sRGB):
    the constant-colour baseline's output, scored against ``truth`` like the gray one (ab = (0, 0))."""
    from .color import lab_to_display, rgb_to_l

    l = rgb_to_l(_uint8(truth)[..., :3])
    lab = np.empty(l.shape + (3,), np.float32)
    lab[..., 0], lab[..., 1], lab[..., 2] = l, ab[0], ab[1]
    return lab_to_display(lab)
