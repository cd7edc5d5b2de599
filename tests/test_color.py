import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor

from colorization.color import (
    AB_MAX, clamp_ab, denormalize_ab, denormalize_l, fit_to_gamut, lab_to_rgb, normalize_ab, normalize_l, rgb_to_lab,
)


def test_rgb_to_lab_matches_skimage_on_random_pixels():
    rgb = np.random.default_rng(0).random((64, 80, 3))
    assert np.abs(rgb_to_lab(rgb) - skcolor.rgb2lab(rgb)).max() < 1e-3


def test_rgb_to_lab_matches_skimage_on_real_photos(eval_photos):
    for path in eval_photos[:3]:
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
        assert np.abs(rgb_to_lab(rgb) - skcolor.rgb2lab(rgb)).max() < 1e-3
        lab = skcolor.rgb2lab(rgb)
        assert np.abs(lab_to_rgb(lab) - skcolor.lab2rgb(lab)).max() < 1e-3 / 100
        # lab -> rgb -> lab round trip in Lab units
        assert np.abs(rgb_to_lab(lab_to_rgb(lab)) - lab).max() < 1e-3


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(1)
    lab = np.stack([rng.uniform(0, 100, (40, 40)), rng.uniform(-128, 127, (40, 40)),
                    rng.uniform(-128, 127, (40, 40))], axis=-1)
    with pytest.warns(UserWarning):  # scikit-image warns about the invalid (negative z) pixels
        expected = skcolor.lab2rgb(lab)
    assert np.abs(lab_to_rgb(lab) - expected).max() < 1e-6


def test_torch_batched_matches_numpy_and_is_differentiable():
    rgb = np.random.default_rng(2).random((2, 16, 24, 3))
    t = torch.tensor(rgb.transpose(0, 3, 1, 2), requires_grad=True)  # (B, 3, H, W)
    lab_t = rgb_to_lab(t)
    assert lab_t.shape == (2, 3, 16, 24)
    for i in range(2):
        assert np.abs(lab_t[i].detach().numpy().transpose(1, 2, 0) - rgb_to_lab(rgb[i])).max() < 1e-9
    back = lab_to_rgb(lab_t)
    (lab_t.sum() + back.sum()).backward()
    assert torch.isfinite(t.grad).all()
    assert torch.allclose(back, t, atol=1e-6)


def test_float32_input_stays_float32():
    rgb = np.random.default_rng(3).random((8, 8, 3)).astype(np.float32)
    assert rgb_to_lab(rgb).dtype == np.float32


def test_normalisation_inverses():
    l = torch.linspace(0, 100, 11)
    ab = torch.linspace(-110, 110, 11)
    assert torch.allclose(denormalize_l(normalize_l(l)), l)
    assert normalize_l(l).min() == -1 and normalize_l(l).max() == 1
    assert torch.allclose(denormalize_ab(normalize_ab(ab)), ab)
    assert clamp_ab(torch.tensor([500.0, -500.0])).tolist() == [AB_MAX, -AB_MAX]


def test_fit_to_gamut_keeps_l_and_hue_and_lands_in_gamut():
    rng = np.random.default_rng(4)
    lab = np.stack([rng.uniform(5, 95, (30, 30)), rng.uniform(-150, 150, (30, 30)),
                    rng.uniform(-150, 150, (30, 30))], axis=-1)
    fitted = fit_to_gamut(lab)
    rgb = lab_to_rgb(fitted, clip=False)
    assert rgb.min() > -2e-3 and rgb.max() < 1 + 2e-3
    assert np.allclose(fitted[..., 0], lab[..., 0])
    # hue kept: ab only shrinks towards 0 along its own direction
    clamped = np.clip(lab[..., 1:], -AB_MAX, AB_MAX)
    cross = clamped[..., 0] * fitted[..., 2] - clamped[..., 1] * fitted[..., 1]
    assert np.abs(cross).max() < 1e-6
    assert (np.hypot(fitted[..., 1], fitted[..., 2]) <= np.hypot(clamped[..., 0], clamped[..., 1]) + 1e-9).all()
    # in-gamut colours are untouched
    inside = skcolor.rgb2lab(rng.random((10, 10, 3)))
    assert np.allclose(fit_to_gamut(inside), inside)


def test_lab_to_display_is_the_fitted_conversion_quantised():
    rng = np.random.default_rng(5)
    lab = np.stack([rng.uniform(0, 100, (20, 20)), rng.uniform(-120, 120, (20, 20)),
                    rng.uniform(-120, 120, (20, 20))], axis=-1).astype(np.float32)
    from colorization.color import lab_to_display

    out = lab_to_display(lab)
    assert out.dtype == np.uint8
    expected = np.round(lab_to_rgb(fit_to_gamut(lab)) * 255)
    assert np.abs(out.astype(int) - expected).max() <= 1
