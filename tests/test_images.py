"""Reading photos: colour profiles converted to sRGB, several frames reported."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest
from PIL import Image, ImageCms

from colorization import read_image
from colorization.images import ImageWarning, icc_profile, icc_text
from colorization.pipeline import prepare


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def display_p3_profile(description: str = "Display P3 (test)") -> bytes:
    """A minimal ICC v2 matrix/TRC profile with Display P3's primaries (D50-adapted) and gamma 2.2, built here
    because no profile file can be downloaded in CI."""
    xyz = lambda *v: b"XYZ \0\0\0\0" + b"".join(map(_s15, v))  # noqa: E731
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256)) + b"\0\0"
    return icc_profile("RGB ", {
        b"desc": icc_text(description),
        b"wtpt": xyz(0.9642, 1.0, 0.8249),
        b"rXYZ": xyz(0.515102, 0.241182, -0.001050),
        b"gXYZ": xyz(0.291965, 0.692236, 0.041882),
        b"bXYZ": xyz(0.157153, 0.066582, 0.784378),
        b"rTRC": gamma, b"gTRC": gamma, b"bTRC": gamma,
        b"cprt": b"text\0\0\0\0no copyright, test profile\0",
    })


def gray_gamma_profile(gamma: float = 2.2) -> bytes:
    """A gray ICC v2 profile with a pure gamma curve, as 'Gray Gamma 2.2'."""
    return icc_profile("GRAY", {
        b"desc": icc_text(f"Gray Gamma {gamma:g} (test)"),
        b"wtpt": b"XYZ \0\0\0\0" + _s15(0.9642) + _s15(1.0) + _s15(0.8249),
        b"kTRC": b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0",
        b"cprt": b"text\0\0\0\0no copyright, test profile\0",
    })


def _saved(img: Image.Image, fmt: str = "PNG", **params) -> io.BytesIO:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    buffer.seek(0)
    return buffer


def test_test_profile_is_a_valid_icc_profile():
    profile = ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile()))
    assert "Display P3" in ImageCms.getProfileDescription(profile)


def _p3_to_srgb(rgb: np.ndarray) -> np.ndarray:
    """The same conversion done by hand: gamma 2.2, Display P3 to XYZ (D65), XYZ to linear sRGB, sRGB curve."""
    p3_to_xyz = np.array([[0.4865709, 0.2656677, 0.1982173], [0.2289746, 0.6917385, 0.0792869],
                          [0.0, 0.0451134, 1.0439444]])
    xyz_to_srgb = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                            [0.0556434, -0.2040259, 1.0572252]])
    linear = np.clip((rgb / 255.0) ** 2.2 @ (xyz_to_srgb @ p3_to_xyz).T, 0, 1)
    return np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear) * 255


def test_display_p3_photo_is_converted_to_srgb():
    pixels = np.zeros((8, 24, 3), np.uint8)
    pixels[:, :8] = (200, 60, 40)
    pixels[:, 8:16] = (90, 160, 110)
    pixels[:, 16:] = 128  # white points agree: a gray stays gray
    tagged = read_image(_saved(Image.fromarray(pixels), icc_profile=display_p3_profile()))
    untagged = read_image(_saved(Image.fromarray(pixels)))
    assert np.array_equal(np.asarray(untagged), pixels)
    rgb = np.asarray(tagged).astype(int)
    assert np.abs(rgb - _p3_to_srgb(pixels)).max() <= 2.5
    assert np.abs(rgb - pixels).max() > 20  # far from reading the numbers as sRGB
    opened_by_a_user = Image.open(_saved(Image.fromarray(pixels), icc_profile=display_p3_profile()))
    assert np.array_equal(prepare(opened_by_a_user).truth, rgb.astype(np.uint8))
    # The converted colours are the ground truth the app scores against, and the source of L.
    assert np.array_equal(prepare(tagged).truth, rgb.astype(np.uint8))


def test_a_wide_gamut_profile_named_srgb_is_converted():
    """A profile's numbers decide whether it is sRGB, not its name: P3 called "sRGB IEC61966-2.1" is still P3."""
    pixels = np.zeros((4, 12, 3), np.uint8)
    pixels[:, :4] = (200, 60, 40)
    pixels[:, 4:8] = (40, 200, 90)
    pixels[:, 8:] = (90, 60, 220)
    named_srgb = display_p3_profile("sRGB IEC61966-2.1")
    description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(named_srgb)))
    assert description.strip() == "sRGB IEC61966-2.1"
    read = np.asarray(read_image(_saved(Image.fromarray(pixels), icc_profile=named_srgb)))
    p3 = np.asarray(read_image(_saved(Image.fromarray(pixels), icc_profile=display_p3_profile())))
    assert np.array_equal(read, p3)
    assert np.abs(read.astype(int) - pixels).max() > 20


def test_srgb_profile_and_alpha_are_kept():
    rgba = Image.fromarray(np.random.default_rng(0).integers(0, 255, (6, 7, 4), dtype=np.uint8), "RGBA")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert np.array_equal(np.asarray(read_image(_saved(rgba, icc_profile=srgb))), np.asarray(rgba))
    p3 = read_image(_saved(rgba, icc_profile=display_p3_profile()))
    assert p3.mode == "RGBA" and np.array_equal(np.asarray(p3)[..., 3], np.asarray(rgba)[..., 3])


def test_a_sixteen_bit_gray_photo_with_a_profile_keeps_its_sixteen_bits():
    ramp = np.linspace(0, 65535, 32 * 1024).reshape(32, 1024).astype(np.uint16)
    assert Image.fromarray(ramp).mode == "I;16"
    photo = read_image(_saved(Image.fromarray(ramp), icc_profile=gray_gamma_profile(2.2)))
    pixels = prepare(photo).pixels
    assert pixels.dtype == np.float32 and len(np.unique(pixels[..., 0])) > 30_000  # 8 bits would give 256
    expected = _gamma_to_srgb(ramp / 65535.0, 2.2)
    error = np.abs(pixels[..., 0] - expected)
    assert error.max() < 1 / 255 and error.mean() < 0.05 / 255  # LittleCMS's 16-bit tables: 0.6 levels near black
    assert (pixels[..., 0] == pixels[..., 2]).all()  # still gray
    codes = (ramp // 257).astype(np.uint8)
    eight_bit = np.asarray(read_image(_saved(Image.fromarray(codes), icc_profile=gray_gamma_profile(2.2))))
    assert eight_bit.dtype == np.uint8  # 8-bit gray: RGB output, as before
    assert np.abs(eight_bit[..., 0] - 255 * _gamma_to_srgb(codes / 255.0, 2.2)).max() < 1.1


def _gamma_to_srgb(gray: np.ndarray, gamma: float) -> np.ndarray:
    """Gray values of a gamma profile as sRGB values, by hand: luminance, then sRGB's curve."""
    y = gray**gamma
    return np.where(y > 0.0031308, 1.055 * y ** (1 / 2.4) - 0.055, 12.92 * y)


def test_a_broken_profile_is_reported_and_the_photo_read_as_srgb():
    pixels = np.full((4, 4, 3), 90, np.uint8)
    with pytest.warns(ImageWarning, match="colour profile not applied"):
        img = read_image(_saved(Image.fromarray(pixels), icc_profile=b"not a profile at all" * 8))
    assert np.array_equal(np.asarray(img), pixels)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_only_the_first_frame_is_used_and_that_is_said(fmt):
    frames = [Image.new("RGB", (10, 6), (v, v, v)) for v in (30, 200, 120)]
    buffer = _saved(frames[0], fmt, save_all=True, append_images=frames[1:])
    with pytest.warns(ImageWarning, match="3 frames.*only the first"):
        img = read_image(buffer)
    assert np.asarray(img.convert("RGB"))[0, 0, 0] == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(_saved(frames[1], fmt))  # one frame: nothing to say
