import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorization.metrics import colorfulness, image_metrics, psnr, ssim


def _pair(seed=0, shape=(48, 64, 3)):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = np.clip(truth.astype(int) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    return noisy, truth


def test_psnr_and_ssim_agree_with_skimage():
    result, truth = _pair()
    assert abs(psnr(result, truth) - peak_signal_noise_ratio(truth, result, data_range=255)) < 1e-4
    expected = structural_similarity(truth, result, data_range=255, channel_axis=2)
    assert abs(ssim(result, truth) - expected) < 1e-4
    assert ssim(truth, truth) == 1.0


def test_colorfulness_known_values():
    gray = np.full((10, 10, 3), 128, np.uint8)
    assert colorfulness(gray) == 0.0
    red = np.zeros((10, 10, 3), np.uint8)
    red[..., 0] = 200  # rg = 200, yb = 100, no spread: 0.3 * sqrt(200^2 + 100^2)
    assert abs(colorfulness(red) - 0.3 * np.hypot(200, 100)) < 1e-9
    half = red.copy()
    half[:, :5] = 0  # rg and yb each spread with std 100 and 50, means 100 and 50
    expected = np.hypot(100, 50) + 0.3 * np.hypot(100, 50)
    assert abs(colorfulness(half) - expected) < 1e-9


def test_image_metrics_keys_and_tiny_images():
    result, truth = _pair(shape=(3, 5, 3))
    assert set(image_metrics(result, truth)) == {"psnr", "ssim", "colorfulness"}
    assert 0 <= ssim(result, truth) <= 1
