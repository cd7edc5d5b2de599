import numpy as np
import pytest
import torch
from PIL import Image
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


def test_image_metrics_are_the_three_metrics():
    result, truth = _pair()
    assert image_metrics(result, truth) == {"psnr": psnr(result, truth), "ssim": ssim(result, truth),
                                            "colorfulness": colorfulness(result)}


# The OpenCV implementations against scikit-image's definitions.

def _reference(result, truth):
    """The metrics as scikit-image and numpy compute them (what metrics.py computed before OpenCV)."""
    side = min(truth.shape[:2])
    win = min(7, side if side % 2 else side - 1)  # the largest odd window that fits
    r, g, b = (result[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    with np.errstate(divide="ignore"):  # identical images: inf
        psnr_value = peak_signal_noise_ratio(truth, result, data_range=255)
    return {"psnr": psnr_value,
            "ssim": structural_similarity(truth, result, data_range=255, channel_axis=2, win_size=win),
            "colorfulness": np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)}


def _outputs(path):
    """A photo and three stand-ins for a colorizer's output: gray, blurred colour, noisy colour."""
    truth = np.asarray(Image.open(path).convert("RGB"))
    gray = np.repeat(np.asarray(Image.open(path).convert("L"))[..., None], 3, axis=2)
    blurred = np.asarray(Image.open(path).convert("RGB").reduce(4).resize(truth.shape[1::-1]))
    noisy = np.clip(truth + np.random.default_rng(0).normal(0, 12, truth.shape), 0, 255).astype(np.uint8)
    return truth, [gray, blurred, noisy, truth]


def test_metrics_match_scikit_image_on_real_photos(eval_photos):
    for path in eval_photos[:4]:
        truth, results = _outputs(path)
        for result in results:
            ours, expected = image_metrics(result, truth), _reference(result, truth)
            assert ours["psnr"] == expected["psnr"]  # the same integer sum, the same formula (inf if identical)
            assert abs(ours["ssim"] - expected["ssim"]) < 1e-9
            assert abs(ours["colorfulness"] - expected["colorfulness"]) < 1e-9


@pytest.mark.parametrize("shape", [(3, 3, 3), (4, 5, 3), (6, 6, 3), (7, 7, 3), (9, 8, 3), (7, 100, 3), (200, 7, 3),
                                   (31, 17, 3), (130, 1100, 3), (5, 9, 4)])
def test_metrics_match_scikit_image_on_odd_shapes(shape):
    result, truth = _pair(seed=3, shape=shape)
    ours, expected = image_metrics(result, truth), _reference(result, truth)
    assert ours["psnr"] == expected["psnr"]
    assert abs(ours["ssim"] - expected["ssim"]) < 1e-9
    assert abs(ours["colorfulness"] - expected["colorfulness"]) < 1e-9


def test_metrics_take_strided_arrays_and_refuse_other_types():
    result, truth = _pair(seed=4, shape=(3, 40, 50))
    result, truth = (torch.from_numpy(a).permute(1, 2, 0).numpy() for a in (result, truth))  # as training validates
    expected = _reference(result, truth)
    assert abs(ssim(result, truth) - expected["ssim"]) < 1e-9
    assert psnr(result, truth) == expected["psnr"]
    assert abs(colorfulness(result) - expected["colorfulness"]) < 1e-9
    with pytest.raises(ValueError, match="uint8"):
        psnr(result.astype(np.float32), truth.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        ssim(result[:-1], truth)
