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


# The OpenCV paths (rgb_to_l of uint8, lab_to_display, gray_display, fit_to_gamut) against the torch path and
# scikit-image.

def _model_like_lab(path, chroma=1.0):
    """A real photo's L with its own ab (scaled): colours as a colorizer produces them, some out of gamut."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    lab = skcolor.rgb2lab(rgb)
    lab[..., 1:] *= chroma
    return lab.astype(np.float32)


def _display_reference(lab):
    """lab_to_display the slow way: the fitted Lab through the float64 torch conversion, rounded."""
    return np.round(lab_to_rgb(fit_to_gamut(lab.astype(np.float64))) * 255)


def test_rgb_to_l_of_uint8_is_bit_identical_to_summing_the_tables_on_every_colour():
    from colorization.color import _Y_TABLES, rgb_to_l

    codes = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    y = _Y_TABLES[0][rgb[..., 0]] + _Y_TABLES[1][rgb[..., 1]] + _Y_TABLES[2][rgb[..., 2]]
    f = np.where(y > 0.008856, np.cbrt(np.maximum(y, 0.008856)), 7.787 * y + 16.0 / 116.0)
    assert np.array_equal(rgb_to_l(rgb), (116.0 * f - 16.0).astype(np.float32))


def test_rgb_to_l_matches_skimage_on_real_photos(eval_photos):
    from colorization.color import rgb_to_l

    for path in eval_photos[:3]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        expected = skcolor.rgb2lab(rgb.astype(np.float64) / 255)[..., 0]
        assert np.abs(rgb_to_l(rgb) - expected).max() < 1e-3
        assert np.abs(rgb_to_l(rgb.astype(np.float32) / 255) - expected).max() < 1e-3


def test_srgb_encoding_is_exact_for_float32_linear_light():
    from colorization.color import _encode, _linear_to_srgb

    rng = np.random.default_rng(6)
    linear = np.concatenate([rng.random(300_000), rng.random(300_000) * 0.01, np.linspace(-0.01, 1.01, 300_000)])
    linear = linear.astype(np.float32).reshape(1, -1, 3)
    out = np.empty(linear.shape, np.uint8)
    _encode(linear, out)
    exact = torch.round(_linear_to_srgb(torch.from_numpy(np.clip(linear.astype(np.float64), 0, 1))) * 255)
    assert np.array_equal(out, exact.numpy().astype(np.uint8))


@pytest.mark.parametrize("chroma", [1.0, 2.5])
def test_lab_to_display_matches_the_float64_torch_path_on_real_photos(eval_photos, chroma):
    from colorization.color import lab_to_display

    for path in eval_photos[:3]:
        lab = _model_like_lab(path, chroma)
        out = lab_to_display(lab).astype(int)
        diff = np.abs(out - _display_reference(lab))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float32 rounding next to a code's edge only
        if chroma == 1.0:  # a photo's own colours are in the gamut: scikit-image's lab2rgb, and the photo itself
            assert np.abs(out - np.round(skcolor.lab2rgb(lab.astype(np.float64)) * 255)).max() <= 1
            assert np.abs(out - np.asarray(Image.open(path).convert("RGB"), dtype=int)).max() <= 1


def test_lab_to_display_shapes_threads_and_dtypes():
    from colorization.color import lab_to_display

    rng = np.random.default_rng(7)
    lab = np.stack([rng.uniform(0, 100, (300, 500)), rng.uniform(-130, 130, (300, 500)),
                    rng.uniform(-130, 130, (300, 500))], axis=-1).astype(np.float32)
    out = lab_to_display(lab)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert np.array_equal(lab_to_display(lab), out)  # runs are fixed, so threads never change a pixel
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(lab_to_display(lab.astype(np.float64)), out)
    assert np.array_equal(lab_to_display(lab[:, ::2]), out[:, ::2])  # non-contiguous input
    for shape in [(1, 1), (1, 7), (5, 1), (2, 3)]:  # OpenCV must not take a 1 x 1 array for a scalar
        part = lab[: shape[0], : shape[1]]
        assert np.array_equal(lab_to_display(part), out[: shape[0], : shape[1]])
    assert lab_to_display(np.zeros((0, 4, 3), np.float32)).shape == (0, 4, 3)


def test_gray_display_is_lab_to_display_of_zero_ab(eval_photos):
    from colorization.color import gray_display, lab_to_display, rgb_to_l

    rng = np.random.default_rng(8)
    edges = np.arange(101 * 4096 + 1) / 4096  # every cell edge of the table, and values beyond it
    l = np.concatenate([rng.uniform(0, 100, 600_000), edges, [-1.0, 100.00001, 101.5, 1e6]]).astype(np.float32)
    l = np.concatenate([l, rgb_to_l(np.asarray(Image.open(eval_photos[0]).convert("RGB"))).ravel()])[None]
    zeros = np.zeros_like(l)
    expected = lab_to_display(np.stack([l, zeros, zeros], axis=-1)).astype(int)
    diff = np.abs(gray_display(l).astype(int) - expected)
    # Within one level; equal but for a handful of values: OpenCV's vector and scalar code round differently,
    # so lab_to_display itself can give one L two answers a level apart, by its position in the array.
    assert diff.max() <= 1 and (diff > 0).sum() <= 20


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (1, 9), (9, 1), (2, 2), (3, 5), (1, 65537), (3, 43691), (2, 1, 1)])
def test_gray_display_of_tiny_shapes_and_one_pixel_runs(shape):
    """A 1 x 1 photo, and the last run (of 65,536) holding one pixel: OpenCV took a one-pixel run for a scalar."""
    from colorization.color import gray_display, lab_to_display

    l = np.random.default_rng(9).uniform(0, 100, shape).astype(np.float32)
    out = gray_display(l)
    assert out.shape == shape + (3,) and out.dtype == np.uint8
    zeros = np.zeros_like(l)
    assert np.abs(out.astype(int) - lab_to_display(np.stack([l, zeros, zeros], axis=-1)).astype(int)).max() <= 1


def test_fit_to_gamut_of_a_tensor_is_that_of_the_array():
    lab = np.stack([np.linspace(5, 95, 60).reshape(6, 10), np.full((6, 10), 120.0), np.full((6, 10), -90.0)], axis=-1)
    fitted = fit_to_gamut(torch.from_numpy(lab).permute(2, 0, 1))
    assert torch.equal(fitted.permute(1, 2, 0), torch.from_numpy(fit_to_gamut(lab)))
