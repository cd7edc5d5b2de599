"""sRGB <-> CIE Lab (D65, 2 degree observer) and the network's Lab normalisation.

This is the only module that knows the Lab formulas and scaling constants. One torch
implementation serves both torch tensors (channels at dim -3, any device, differentiable)
and numpy arrays (channels last, as scikit-image), so the two can never drift apart.
It follows scikit-image's ``rgb2lab``/``lab2rgb`` constants exactly.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "rgb_to_lab",
    "lab_to_rgb",
    "normalize_l",
    "denormalize_l",
    "normalize_ab",
    "denormalize_ab",
    "clamp_ab",
    "fit_to_gamut",
    "lab_to_display",
    "rgb_to_l",
    "L_CENTER",
    "L_SCALE",
    "AB_SCALE",
    "AB_MAX",
    "LAB_NORMALIZATION",
]

# The network sees L/50 - 1 in [-1, 1] and predicts ab/110 (ab of sRGB colours lie within about +-110).
L_CENTER = 50.0
L_SCALE = 50.0
AB_SCALE = 110.0
# Predicted ab is clamped to this before conversion; larger values are outside sRGB at every L.
AB_MAX = 110.0
LAB_NORMALIZATION = {"l_center": L_CENTER, "l_scale": L_SCALE, "ab_scale": AB_SCALE}

# scikit-image's matrices and D65 white point ("2" degree observer).
_XYZ_FROM_RGB = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
]
_WHITE_D65 = [0.95047, 1.0, 1.08883]

Array = TypeVar("Array", np.ndarray, torch.Tensor)
_RUN = 1 << 20  # pixels converted at once by the numpy entry points


def _matrix(inverse: bool, like: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)
    if inverse:
        m = torch.linalg.inv(m)
    return m.to(device=like.device, dtype=like.dtype)


def _apply_matrix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # x: (..., 3, H, W); mixes the channel dimension.
    return torch.einsum("ij,...jhw->...ihw", m, x)


def _white(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_WHITE_D65, dtype=like.dtype, device=like.device).view(3, 1, 1)


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    # Clamping inside torch.where keeps both branches finite, so gradients never turn NaN.
    return torch.where(rgb > 0.04045, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    return torch.where(
        linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055, linear * 12.92
    )


def _f(t: torch.Tensor) -> torch.Tensor:  # the CIE Lab companding function
    return torch.where(t > 0.008856, t.clamp(min=0.008856) ** (1.0 / 3.0), 7.787 * t + 16.0 / 116.0)


def _rgb_to_lab_torch(rgb: torch.Tensor) -> torch.Tensor:
    xyz = _apply_matrix(_matrix(False, rgb), _srgb_to_linear(rgb)) / _white(rgb)
    fx, fy, fz = _f(xyz).unbind(dim=-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def _lab_to_linear(lab: torch.Tensor) -> torch.Tensor:
    """Lab to linear-light RGB, unclipped: a value outside [0, 1] means outside the sRGB gamut."""
    l, a, b = lab.unbind(dim=-3)
    fy = (l + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp(min=0.0)  # as scikit-image: negative z is invalid
    f = torch.stack([fx, fy, fz], dim=-3)
    xyz = torch.where(f > 0.2068966, f.clamp(min=0.2068966) ** 3, (f - 16.0 / 116.0) / 7.787)
    return _apply_matrix(_matrix(True, lab), xyz * _white(lab))


def _lab_to_rgb_torch(lab: torch.Tensor, clip: bool) -> torch.Tensor:
    rgb = _linear_to_srgb(_lab_to_linear(lab))
    return rgb.clamp(0.0, 1.0) if clip else rgb


def _numpy_call(fn, x: np.ndarray, **kwargs) -> np.ndarray:
    # numpy convention: channels last, like scikit-image. Float32 stays float32 (big photos).
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    pixels = x.astype(dtype, copy=False).reshape(-1, 3)
    out = None
    # Every conversion is per pixel, so a photo of any shape (a 1 x 40,000,000 strip included) goes
    # through in runs of pixels: the temporaries stay a few MB instead of several times the photo's size.
    for start in range(0, max(len(pixels), 1), _RUN):  # an empty array still gets its output type
        run = torch.from_numpy(np.ascontiguousarray(pixels[start : start + _RUN].T))[:, None]  # (3, 1, n)
        result = fn(run, **kwargs)[:, 0].T.numpy()
        if out is None:  # the function decides the output type (uint8 for display)
            out = np.empty(pixels.shape, dtype=result.dtype)
        out[start : start + _RUN] = result
    return out.reshape(x.shape)


def rgb_to_lab(rgb: Array) -> Array:
    """sRGB in [0, 1] to Lab (L in [0, 100]). Tensors: channels at dim -3; arrays: channels last."""
    if isinstance(rgb, np.ndarray):
        return _numpy_call(_rgb_to_lab_torch, rgb)
    return _rgb_to_lab_torch(rgb)


def _luminance_tables() -> np.ndarray:
    """(3, 256) float32: each uint8 channel value's contribution to Y, for the 8-bit fast path."""
    codes = torch.arange(256, dtype=torch.float64) / 255.0
    rows = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)[1].view(3, 1)  # Y row; white Y is 1
    return (rows * _srgb_to_linear(codes).view(1, 256)).numpy().astype(np.float32)


_Y_TABLES = _luminance_tables()


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Lab L only (H, W) of an (H, W, 3) sRGB array: uint8 (0-255, via tables) or float in [0, 1].

    The pipeline needs only L of the input, so this skips X, Z and the a, b arithmetic.
    """
    if rgb.dtype == np.uint8:
        y = _Y_TABLES[0][rgb[..., 0]]
        y += _Y_TABLES[1][rgb[..., 1]]
        y += _Y_TABLES[2][rgb[..., 2]]
    else:
        lin = _srgb_to_linear(torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)))
        y = (lin @ torch.tensor(_XYZ_FROM_RGB[1], dtype=torch.float32)).numpy()
    f = np.where(y > 0.008856, np.cbrt(np.maximum(y, 0.008856)), 7.787 * y + 16.0 / 116.0)
    return (116.0 * f - 16.0).astype(np.float32, copy=False)


def lab_to_rgb(lab: Array, clip: bool = True) -> Array:
    """Lab to sRGB, clipped to [0, 1] unless ``clip=False``. Same layouts as :func:`rgb_to_lab`."""
    if isinstance(lab, np.ndarray):
        return _numpy_call(_lab_to_rgb_torch, lab, clip=clip)
    return _lab_to_rgb_torch(lab, clip)


def normalize_l(l: Array) -> Array:
    """Lab L in [0, 100] to the network's input range [-1, 1]."""
    return (l - L_CENTER) / L_SCALE


def denormalize_l(l_norm: Array) -> Array:
    """Inverse of :func:`normalize_l`."""
    return l_norm * L_SCALE + L_CENTER


def normalize_ab(ab: Array) -> Array:
    """Lab ab to the network's target scale (about [-1, 1])."""
    return ab / AB_SCALE


def denormalize_ab(ab_norm: Array) -> Array:
    """Inverse of :func:`normalize_ab`."""
    return ab_norm * AB_SCALE


def clamp_ab(ab: Array) -> Array:
    """Clamp predicted ab to [-AB_MAX, AB_MAX] so extreme outputs cannot blow out the conversion."""
    if isinstance(ab, np.ndarray):
        return np.clip(ab, -AB_MAX, AB_MAX)
    return ab.clamp(-AB_MAX, AB_MAX)


def _fit_to_gamut_torch(lab: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fitted Lab, its linear RGB). The gamut test runs on linear light: no gamma curve needed."""
    lab = torch.cat([lab[..., :1, :, :], clamp_ab(lab[..., 1:, :, :])], dim=-3)
    linear = _lab_to_linear(lab)
    outside = ((linear < -1e-4) | (linear > 1 + 1e-4)).any(dim=-3)  # (..., H, W)
    if not bool(outside.any()):
        return lab, linear

    def convert(pixels: torch.Tensor) -> torch.Tensor:  # (N, 3) Lab -> (N, 3) linear RGB
        return _lab_to_linear(pixels.T.reshape(3, 1, -1)).reshape(3, -1).T

    bad = lab.movedim(-3, -1)[outside]  # (N, 3): only out-of-gamut pixels are searched, usually few
    lo = torch.zeros(bad.shape[0], 1, dtype=lab.dtype, device=lab.device)
    hi = torch.ones_like(lo)
    for _ in range(steps):  # bisection on the chroma scale; L and hue stay as they are
        mid = (lo + hi) / 2
        lin_mid = convert(torch.cat([bad[:, :1], bad[:, 1:] * mid], dim=1))
        ok = ((lin_mid >= -1e-4) & (lin_mid <= 1 + 1e-4)).all(dim=1, keepdim=True)
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    fixed = torch.cat([bad[:, :1], bad[:, 1:] * lo], dim=1)
    # Both tensors were made in this function, so writing into them (through the views) is safe.
    lab.movedim(-3, -1)[outside] = fixed
    linear.movedim(-3, -1)[outside] = convert(fixed)
    return lab, linear


def fit_to_gamut(lab: Array, steps: int = 8) -> Array:
    """Clamp ab, then shrink the chroma of any pixel outside sRGB until it fits, keeping L and hue.

    Clipping RGB instead would shift hue and brightness: the out-of-gamut artefacts we avoid.
    """
    if isinstance(lab, np.ndarray):
        return _numpy_call(lambda t, steps: _fit_to_gamut_torch(t, steps)[0], lab, steps=steps)
    return _fit_to_gamut_torch(lab, steps)[0]


def _display_torch(lab: torch.Tensor, steps: int) -> torch.Tensor:
    _, linear = _fit_to_gamut_torch(lab, steps)
    return (_linear_to_srgb(linear.clamp_(0.0, 1.0)) * 255.0).round_().to(torch.uint8)


def lab_to_display(lab: np.ndarray, steps: int = 8) -> np.ndarray:
    """Lab (H, W, 3) to displayable uint8 sRGB: clamp, fit to the gamut, convert, quantise.

    Done band by band in one pass, so a 64-megapixel photo needs no full-size float temporaries.
    """
    return _numpy_call(_display_torch, lab, steps=steps)
