"""sRGB <-> CIE Lab (D65, 2 degree observer) and the network's Lab normalisation.

This is the only module that knows the Lab formulas and scaling constants. One torch
implementation of ``rgb_to_lab``/``lab_to_rgb`` serves both torch tensors (channels at dim -3, any
device, differentiable) and numpy arrays (channels last, as scikit-image), so the two can never drift
apart. It follows scikit-image's ``rgb2lab``/``lab2rgb`` constants exactly.

The pipeline's full-resolution work (L of uint8 RGB, fitting to the gamut, Lab to displayable uint8)
runs on numpy and OpenCV instead: the same formulas folded into tables and affine maps, in runs of
pixels on torch's threads. The tests hold it to the torch conversion and to scikit-image.
"""

from __future__ import annotations

import functools
from typing import TypeVar

import cv2
import numpy as np
import torch

from .images import as_float
from .parallel import in_runs

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
    "gray_display",
    "rgb_to_l",
    "is_grayish",
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
_MATRICES = {False: torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)}
_MATRICES[True] = torch.linalg.inv(_MATRICES[False])


def _matrix(inverse: bool, like: torch.Tensor) -> torch.Tensor:
    return _MATRICES[inverse].to(device=like.device, dtype=like.dtype)


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
_Y_LUT = np.ascontiguousarray(_Y_TABLES.T)[None]  # (1, 256, 3): cv2.LUT's layout of the same tables
_ONES = np.ones((1, 3))


def _l_from_y(y: np.ndarray) -> np.ndarray:
    """Lab L of luminance Y (float32, white 1), in place: the CIE companding without a where() pass."""
    f = np.cbrt(y)
    dark = y <= 0.008856  # the linear segment near black
    if dark.any():
        f[dark] = 7.787 * y[dark] + 16.0 / 116.0
    f *= 116.0
    f -= 16.0
    return f


def _l_run(rgb: np.ndarray) -> np.ndarray:  # (1, n, 3) uint8 -> (n,) float32 L
    # The three channels' Y contributions by one table look-up, summed by transform: bit-identical to
    # adding the three float32 tables in order (checked on all 2^24 colours).
    return _l_from_y(cv2.transform(cv2.LUT(rgb, _Y_LUT), _ONES).reshape(-1))


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Lab L only (H, W) of an (H, W, 3) sRGB array: uint8 (0-255, via tables) or float in [0, 1].

    The pipeline needs only L of the input, so this skips X, Z and the a, b arithmetic.
    """
    if rgb.dtype == np.uint8:
        pixels = np.ascontiguousarray(rgb).reshape(1, -1, 3)
        l = np.empty(pixels.shape[1], np.float32)

        def run(start: int, stop: int) -> None:
            l[start:stop] = _l_run(pixels[:, start:stop])

        in_runs(run, len(l))
        return l.reshape(rgb.shape[:-1])
    lin = _srgb_to_linear(torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)))
    y = (lin @ torch.tensor(_XYZ_FROM_RGB[1], dtype=torch.float32)).numpy()
    return _l_from_y(y)


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


# Fitting to the gamut and the display conversion run on numpy and OpenCV, in runs of pixels on torch's
# threads: _lab_to_linear's formulas as two affine maps that cv2.transform applies in one pass each,
# Lab -> f = (fx, fy, fz) and f^-1 -> linear RGB (white point folded into the matrix).
_F_FROM_LAB = np.array([[1 / 116, 1 / 500, 0, 16 / 116], [1 / 116, 0, 0, 16 / 116], [1 / 116, 0, -1 / 200, 16 / 116]])
_KNEE = 0.2068966
# f^-1 is f^3 above the knee and the line (f - 16/116) / 7.787 below it, which is f^3's tangent at the knee,
# so f^-1 = max(f, knee)^3 + (min(f, knee) - knee) / 7.787 with no branch (the two agree to 4e-8 at the
# knee); the constant -knee / 7.787 goes into the matrix's offset column.
_RGB_FROM_XYZ = _MATRICES[True].numpy() * np.array(_WHITE_D65)
_RGB_FROM_F = np.hstack([_RGB_FROM_XYZ, _RGB_FROM_XYZ @ np.full((3, 1), -_KNEE / 7.787)])
_GAMUT_TOL = 1e-4  # linear RGB this far outside [0, 1] still counts as inside: float rounding, not colour
_CELLS = 1 << 12  # cells of linear light in the sRGB tables
# Table indices straight into numpy's own index type (OpenCV 5 has 64-bit integers): np.take then skips a
# conversion pass, which halves its cost.
_INDEX = getattr(cv2, "CV_64S", cv2.CV_32S)


def _clamp_ab_run(lab: np.ndarray) -> np.ndarray:
    """clamp_ab of (1, n, 3) float32 Lab, skipped when nothing needs it (L in [0, 100] never does)."""
    low, high, _, _ = cv2.minMaxLoc(lab.reshape(1, -1))
    if low < -AB_MAX or high > AB_MAX:
        lab = lab.copy()
        lab[..., 1:] = clamp_ab(lab[..., 1:])
    return lab


def _linear_run(lab: np.ndarray) -> np.ndarray:
    """(1, n, 3) float32 Lab -> linear RGB, unclipped (as ``_lab_to_linear``, to float32 rounding)."""
    # Scalar operations on the single-channel view: OpenCV would take a 1 x 1 three-channel array for a scalar.
    f = cv2.transform(lab, _F_FROM_LAB)
    xyz = cv2.pow(cv2.max(f.reshape(1, -1), _KNEE), 3).reshape(f.shape)
    below = cv2.min(f.reshape(1, -1), _KNEE).reshape(f.shape)
    np.maximum(below[..., 2], 0.0, out=below[..., 2])  # z's f clamped at 0, as scikit-image (negative z is invalid)
    return cv2.transform(cv2.scaleAdd(below, 1 / 7.787, xyz), _RGB_FROM_F)


def _inside(linear: np.ndarray) -> np.ndarray:
    """(1, n) uint8, 255 where the linear RGB (1, n, 3) is inside the gamut."""
    return cv2.inRange(linear, (-_GAMUT_TOL,) * 3, (1 + _GAMUT_TOL,) * 3)


def _outside(linear: np.ndarray) -> np.ndarray:
    """Indices of the pixels of (1, n, 3) linear RGB outside the gamut (usually none or few)."""
    inside = _inside(linear)
    if cv2.countNonZero(inside) == inside.size:
        return np.empty(0, np.intp)
    return np.flatnonzero(inside.reshape(-1) == 0)


def _chroma_scale(lab: np.ndarray, steps: int) -> np.ndarray:
    """(1, k, 3) clamped Lab outside the gamut -> (k, 1) chroma scale that fits: bisection, L and hue kept."""
    lo = np.zeros((lab.shape[1], 1), np.float32)
    hi = np.ones_like(lo)
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = _inside(_linear_run(lab * np.hstack([np.ones_like(mid), mid, mid])[None])).reshape(-1, 1) > 0
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return lo


def fit_to_gamut(lab: Array, steps: int = 8) -> Array:
    """Clamp ab, then shrink the chroma of any pixel outside sRGB until it fits, keeping L and hue.

    Clipping RGB instead would shift hue and brightness: the out-of-gamut artefacts we avoid.
    Arrays: (..., 3), float32 stays float32; tensors: channels at dim -3 (not differentiable).
    """
    if not isinstance(lab, np.ndarray):
        fitted = fit_to_gamut(lab.detach().movedim(-3, -1).cpu().numpy(), steps)
        return torch.from_numpy(fitted).movedim(-1, -3).to(lab.device)
    dtype = np.float32 if lab.dtype == np.float32 else np.float64
    fitted = np.array(lab, dtype=dtype).reshape(-1, 3)
    fitted[:, 1:] = clamp_ab(fitted[:, 1:])

    def run(start: int, stop: int) -> None:
        part = fitted[start:stop]
        bad = _outside(_linear_run(np.ascontiguousarray(part, dtype=np.float32)[None]))
        if len(bad):  # scaled in the input's precision, so hue is kept exactly
            part[bad, 1:] *= _chroma_scale(np.ascontiguousarray(part[bad], dtype=np.float32)[None], steps)

    in_runs(run, len(fitted))
    return fitted.reshape(lab.shape)


@functools.cache
def _srgb_tables() -> tuple[np.ndarray, np.ndarray]:
    """The sRGB encoding as look-ups, per cell of linear light (i / _CELLS): the display code at the cell's
    start (uint8), and the float32 linear value inside the cell from which the code is one higher (or inf).

    Exact for float32 input: code k starts where 255 sRGB(linear) reaches k - 0.5, and a float32 compares
    with that boundary exactly. Boundaries are at least 3e-4 apart (codes 1, 2, ...), so a cell (2.4e-4)
    holds at most one.
    """
    codes = torch.arange(1, 256, dtype=torch.float64)
    bounds = _srgb_to_linear((codes - 0.5) / 255.0).numpy()  # linear light where code k starts
    bounds32 = bounds.astype(np.float32)
    bounds32[bounds32 < bounds] = np.nextafter(bounds32[bounds32 < bounds], np.float32(np.inf))  # round up
    starts = np.arange(_CELLS) / _CELLS
    start_codes = np.searchsorted(bounds, starts, side="right").astype(np.uint8)
    inside = np.full(_CELLS, np.inf, np.float32)
    cells = np.ceil(bounds * _CELLS).astype(int) - 1  # the cell (start, end] holding each boundary
    inside[cells] = bounds32
    return start_codes, inside


def _encode(linear: np.ndarray, out: np.ndarray) -> None:
    """Linear RGB (float32) -> ``out``, uint8 sRGB codes of it clipped to [0, 1]. Values beyond [-1, 2] get
    arbitrary codes (the index conversion does not saturate): callers clip those they keep."""
    start_codes, inside = _srgb_tables()
    flat = linear.reshape(1, -1)
    cells = cv2.addWeighted(flat, _CELLS, flat, 0.0, -0.5, dtype=_INDEX)  # floor(linear * cells)
    above = cv2.compare(flat, np.take(inside, cells, mode="clip"), cv2.CMP_GE)  # 255 past the cell's boundary
    cv2.addWeighted(np.take(start_codes, cells, mode="clip"), 1.0, above, 1 / 255, 0.0, dst=out.reshape(1, -1))


def lab_to_display(lab: np.ndarray, steps: int = 8) -> np.ndarray:
    """Lab (H, W, 3) to displayable uint8 sRGB: clamp, fit to the gamut, convert, quantise.

    Done in runs of pixels on torch's threads, so a 64-megapixel photo needs no full-size float temporaries.
    Agrees with ``lab_to_rgb(fit_to_gamut(lab))`` rounded to uint8 within one level (tested).
    """
    pixels = np.asarray(lab).reshape(-1, 3)
    out = np.empty((1, len(pixels), 3), np.uint8)

    def run(start: int, stop: int) -> None:
        part = _clamp_ab_run(np.ascontiguousarray(pixels[start:stop], dtype=np.float32)[None])
        linear = _linear_run(part)
        _encode(linear, out[:, start:stop])
        bad = _outside(linear)
        if len(bad):  # refitted run by run, so memory stays bounded however much of a photo is outside
            lab_bad = part[:, bad]
            scale = _chroma_scale(lab_bad, steps)
            codes = np.empty((1, len(bad), 3), np.uint8)
            _encode(np.clip(_linear_run(lab_bad * np.hstack([np.ones_like(scale), scale, scale])), -1.0, 2.0), codes)
            out[:, start + bad] = codes  # still outside only where L is (beyond 100): clipped

    in_runs(run, len(pixels), 1 << 17)  # runs large enough that refitting a run's few pixels costs little
    return out.reshape(np.shape(lab))


_GRAY_STEPS = 1 << 12  # cells per unit of L in the gray table
_EXACT = 1 << 24  # the gray table's flag (in the fourth byte): compute this cell's pixels with lab_to_display


@functools.cache
def _gray_table() -> np.ndarray:
    """(cells,) little-endian uint32: R | G << 8 | B << 16 of lab_to_display((L, 0, 0)) on each cell of L.

    Built by lab_to_display itself on the cells' edges. A cell whose codes change near it (at either edge
    or at a neighbour's) is flagged instead, as is the last, which also takes every L above the table.
    """
    edges = np.arange(101 * _GRAY_STEPS + 1, dtype=np.float32) / _GRAY_STEPS  # L in [0, 101], exact
    lab = np.zeros((len(edges), 3), np.float32)
    lab[:, 0] = edges
    codes = lab_to_display(lab).astype(np.uint32)
    packed = codes[:, 0] | codes[:, 1] << 8 | codes[:, 2] << 16
    changes = np.flatnonzero(packed[1:] != packed[:-1])  # cell i's edges differ
    table = packed[:-1].astype("<u4")
    for shift in (-1, 0, 1):  # the neighbours too: float rounding may wobble a code near its boundary
        table[np.clip(changes + shift, 0, len(table) - 1)] |= _EXACT
    table[-1] |= _EXACT
    return table


def gray_display(l: np.ndarray) -> np.ndarray:
    """``lab_to_display`` of (L, 0, 0) for an L array (..., H, W): uint8 (..., 3), within one level of it.

    With a = b = 0 the display colour is a function of L alone, so a table over L gives it (the gray baseline
    of every evaluation) without the conversion; pixels whose cell is near a code boundary go through it.
    Equal but for about 1 value in 10^7: OpenCV's vector and scalar code round differently, so
    lab_to_display itself may give one L two answers a level apart by its position in the array.
    """
    table = _gray_table()
    flat = np.ascontiguousarray(l, dtype=np.float32).reshape(1, -1)
    out = np.empty((1, flat.shape[1], 3), np.uint8)

    def run(start: int, stop: int) -> np.ndarray:
        # Beyond the table: its first or last cell. np.clip, not cv2.min/max: OpenCV reads a run of one pixel
        # (a 1 x 1 photo, or the last run of 65,537) as a scalar and answers with four values.
        part = np.clip(flat[:, start:stop], -1.0, 102.0)
        cells = cv2.addWeighted(part, _GRAY_STEPS, part, 0.0, -0.5, dtype=_INDEX)  # floor(L * steps)
        rgb_flag = np.take(table, cells, mode="clip").view(np.uint8).reshape(1, -1, 4)
        out[:, start:stop] = cv2.cvtColor(rgb_flag, cv2.COLOR_RGBA2RGB)
        flags = cv2.extractChannel(rgb_flag, 3)
        return start + (np.flatnonzero(flags) if cv2.countNonZero(flags) else np.empty(0, np.intp))

    exact = np.concatenate([np.empty(0, np.intp), *in_runs(run, flat.shape[1])])
    if len(exact):
        lab = np.zeros((len(exact), 3), np.float32)
        lab[:, 0] = flat[0, exact]
        out[0, exact] = lab_to_display(lab)
    return out.reshape(np.shape(l) + (3,))


def is_grayish(rgb: np.ndarray, chroma_threshold: float = 5.0, tone_ratio: float = 0.15,
               tint_chroma: float = 40.0) -> bool:
    """True for gray, nearly gray or toned (sepia, cyanotype) photos: nothing a colorizer should learn.

    rgb: (H, W, 3) uint8, or float in [0, 1]. Gray: 95% of pixels have chroma under ``chroma_threshold``.
    Toned: ab is nearly a function of L (the tone curve) and chroma stays modest.
    """
    # A 96 x 96 grid of pixels, not an average: averaging mixes points of the tone curve into ones off it.
    h, w = rgb.shape[:2]
    rows, cols = np.linspace(0, h - 1, min(h, 96)).astype(int), np.linspace(0, w - 1, min(w, 96)).astype(int)
    lab = rgb_to_lab(as_float(rgb[rows][:, cols])).reshape(-1, 3).astype(np.float64)
    l, ab = lab[:, 0], lab[:, 1:]
    chroma = np.hypot(ab[:, 0], ab[:, 1])
    chroma_p95 = float(np.percentile(chroma, 95))
    if chroma_p95 < chroma_threshold:
        return True
    # ab left unexplained by L (each pixel against the mean ab of its L bin), relative to the chroma. On the
    # evaluation photos and their toned copies (six tone curves, JPEG quality 60 and 95), a ratio under 0.15 with
    # chroma under 40 caught 83 % of the toned copies (the misses: strong curves at JPEG 60) and 0.6 % of the
    # colour photos (nearly monochrome ones); 0.25 would catch 99 % and 3 %.
    bins = np.minimum((l * 0.32).astype(int), 31)
    counts = np.maximum(np.bincount(bins, minlength=32), 1)
    mean_ab = np.stack([np.bincount(bins, ab[:, i], 32) / counts for i in (0, 1)], axis=1)
    unexplained = float(np.sqrt(((ab - mean_ab[bins]) ** 2).sum(axis=1).mean()))
    return unexplained < tone_ratio * float(np.sqrt((chroma**2).mean())) and chroma_p95 < tint_chroma
