"""PSNR, SSIM (scikit-image, on uint8 RGB) and colourfulness (Hasler and Suesstrunk 2003)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["psnr", "ssim", "colorfulness", "image_metrics"]


def psnr(result: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB between two uint8 RGB images (data range 255); identical images give inf."""
    return float(peak_signal_noise_ratio(truth, result, data_range=255))


def ssim(result: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM over the colour channels of two uint8 RGB images (data range 255)."""
    # win_size must be odd and fit the image; tiny images fall back to the largest that does.
    win = min(7, min(truth.shape[:2]) // 2 * 2 - 1 if min(truth.shape[:2]) < 7 else 7)
    if win < 3:
        return float(np.mean(result == truth))
    return float(structural_similarity(truth, result, data_range=255, channel_axis=2, win_size=win))


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness of a uint8 RGB image (0 = gray, about 30-60 = vivid)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mean = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(std + 0.3 * mean)


def image_metrics(result: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and colourfulness of ``result`` against ``truth`` (uint8 RGB, same shape)."""
    return {"psnr": psnr(result, truth), "ssim": ssim(result, truth), "colorfulness": colorfulness(result)}
