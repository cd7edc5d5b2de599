"""The constant-colour baseline: the one ab that best fits a folder, scored the way the gray baseline is."""

import numpy as np
import pytest

from colorization.color import gray_display, rgb_to_l, rgb_to_lab
from colorization.metrics import constant_ab_baseline, constant_ab_image, psnr


def _photo(seed: int, shape=(24, 32, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_zero_ab_is_the_gray_baseline_within_one_level():
    truth = _photo(0)
    gray = gray_display(rgb_to_l(truth))
    assert np.abs(constant_ab_image(truth, (0.0, 0.0)).astype(int) - gray).max() <= 1


def test_the_constant_is_the_pixel_weighted_mean_ab_and_a_uniform_tint_is_recovered():
    orange = np.zeros((20, 30, 3), np.uint8) + np.array([200, 120, 40], np.uint8)
    a, b = constant_ab_baseline([orange])
    expected = rgb_to_lab(orange[:1, :1].astype(np.float32) / 255.0)[0, 0, 1:]
    assert abs(a - expected[0]) < 1e-3 and abs(b - expected[1]) < 1e-3 and b > 30
    # the tinted gray reproduces the photo far better than gray does
    assert psnr(constant_ab_image(orange, (a, b)), orange) > psnr(gray_display(rgb_to_l(orange)), orange) + 10

    big, small = _photo(1, (40, 40, 3)), orange[:10, :10]
    lab_big = rgb_to_lab(big.astype(np.float32) / 255.0)[..., 1:].reshape(-1, 2)
    lab_small = rgb_to_lab(small.astype(np.float32) / 255.0)[..., 1:].reshape(-1, 2)
    pooled = np.concatenate([lab_big, lab_small]).mean(axis=0)  # every pixel counts once, not every photo
    assert np.allclose(constant_ab_baseline(iter([big, small])), pooled, atol=1e-3)
    assert not np.allclose(pooled, (lab_big.mean(axis=0) + lab_small.mean(axis=0)) / 2, atol=1.0)


def test_no_photos_is_an_error():
    with pytest.raises(ValueError, match="no pixels"):
        constant_ab_baseline([])


def test_the_notebooks_constant_baseline_scores_the_tint_beside_gray(tmp_path):
    from PIL import Image

    from colorization.notebook import constant_baseline

    paths = []
    for i, colour in enumerate([(190, 130, 90), (170, 120, 100)]):  # two warm photos, with some texture
        pixels = np.clip(np.array(colour) + _photo(i, (20, 24, 3)) // 8, 0, 255).astype(np.uint8)
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    report = constant_baseline(paths)
    assert report["ab"][1] > 10  # yellowish: b > 0
    assert report["psnr_gain"] > 5 and report["model"]["psnr"] - report["gray"]["psnr"] == report["psnr_gain"]
    assert [r["file"] for r in report["per_image"]] == [str(p) for p in paths]
    assert constant_baseline(paths, ab=(0.0, 0.0))["psnr_gain"] == pytest.approx(0.0, abs=0.1)  # gray itself


def test_evaluate_scores_the_one_colour_baseline_beside_gray(tmp_path, colorizer):
    from PIL import Image

    from colorization.evaluation import evaluate, format_table
    from colorization.notebook import constant_baseline

    paths = []
    for i, colour in enumerate([(190, 130, 90), (90, 140, 190)]):
        pixels = np.clip(np.array(colour) + _photo(i, (20, 24, 3)) // 8, 0, 255).astype(np.uint8)
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    report = evaluate(colorizer, paths, render_size=32, progress=False)
    same = constant_baseline(paths)
    assert report["constant_ab"] == pytest.approx(list(same["ab"]))
    assert report["constant"]["psnr"] == pytest.approx(same["model"]["psnr"])
    assert "one colour" in format_table(report) and "constant" in report["per_image"][0]
