"""The pipeline's steps as torch modules that export to ONNX, for the static page (``web/``).

The page runs what :class:`~colorization.pipeline.Colorizer` runs, step for step, as ONNX graphs in the visitor's
browser: L of the photo, L resized to the network's resolution (OpenCV's ``INTER_AREA`` when shrinking, else
bilinear), the network, ab upsampled bilinearly onto the full-resolution L, and the display conversion with
the gamut fit. The Lab formulas come from :mod:`colorization.color` (its torch functions), so the browser does no
colour arithmetic of its own; tests hold every graph to the numpy/OpenCV pipeline.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .color import (_GAMUT_TOL, _lab_to_linear, _linear_to_srgb, clamp_ab, denormalize_ab, lab_to_display, normalize_l,
                    rgb_to_lab)

__all__ = ["Lightness", "AreaResize", "LinearResize", "Network", "Display", "GAMUT_STEPS", "static_same_padding"]

GAMUT_STEPS = inspect.signature(lab_to_display).parameters["steps"].default  # bisection steps of the chroma scale


class Lightness(nn.Module):
    """RGBA pixels (N, 4) uint8, as a canvas gives them -> Lab L (N,) float32: ``rgb_to_l`` of the RGB."""

    def forward(self, rgba: torch.Tensor) -> torch.Tensor:
        rgb = rgba[:, :3].to(torch.float32).T[:, None] / 255.0  # (3, 1, N): channels at dim -3
        return rgb_to_lab(rgb)[0, 0]


def _area_weights(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in): output cell i averages the input over [i s, (i + 1) s), s = n_in / n_out, each input cell
    weighted by its overlap, as OpenCV's INTER_AREA (which drops overlaps under 1e-3 of a cell)."""
    j = torch.arange(n_in, dtype=torch.float32)
    scale = torch.ones(1) * (n_in / n_out)
    start = torch.arange(n_out, dtype=torch.float32)[:, None] * scale
    overlap = (torch.minimum(j[None] + 1, start + scale) - torch.maximum(j[None], start)).clamp(min=0)
    overlap = torch.where(overlap > 1e-3, overlap, torch.zeros_like(overlap))
    cell = torch.minimum(scale, n_in - start)  # the last cell may be cut by the border
    return overlap / cell


class AreaResize(nn.Module):
    """x (C, H, W) -> (C, h, w), h and w the lengths of ``rows`` and ``cols`` (a graph's output size must be a
    shape, not a value, for torch to export it): ``cv2.resize(..., interpolation=INTER_AREA)``."""

    def forward(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return _area_weights(x.shape[1], rows.shape[0]) @ (x @ _area_weights(x.shape[2], cols.shape[0]).T)


class LinearResize(nn.Module):
    """x (C, h, w) -> (C, H, W), H and W the lengths of ``rows`` and ``cols``: bilinear with pixel centres
    aligned, as ``cv2.resize(..., interpolation=INTER_LINEAR)`` (the pipeline's ``upsample_ab``)."""

    def forward(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        size = (rows.shape[0], cols.shape[0])
        return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]


def _padded_index(n: int, padded: torch.Tensor, reflect: torch.Tensor) -> torch.Tensor:
    """Indices (padded,) into a side of length ``n`` that pad it at its end as ``F.pad`` does: by reflection, or by
    repeating the last pixel where ``reflect`` is false."""
    i = torch.arange(padded.shape[0])
    return torch.where(i < n, i, torch.where(reflect, 2 * (n - 1) - i, torch.full_like(i, n - 1))).clamp(0, n - 1)


class Network(nn.Module):
    """The network as the pipeline calls it: L (1, 1, h, w) in [0, 100] -> ab (1, 2, h, w) in Lab units.

    ``rows`` and ``cols`` give by their lengths the size padded to the network's stride (the caller's multiple
    of 32 at or above h and w). The padding is the model's own (reflection, repetition for a side shorter than its
    pad), taken here as indices so the network itself runs on sides that are multiples of its stride, where
    EfficientNet's "same" padding is a constant (:func:`static_same_padding`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, l: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        h, w = l.shape[-2:]
        reflect = torch.tensor(rows.shape[0] - h < h) & torch.tensor(cols.shape[0] - w < w)
        x = normalize_l(l).index_select(2, _padded_index(h, rows, reflect))
        x = x.index_select(3, _padded_index(w, cols, reflect))
        return denormalize_ab(self.model.predict(x)[..., :h, :w])


def _pad_same_on_multiples(x: torch.Tensor, kernel_size, stride, dilation=(1, 1), value: float = 0.0) -> torch.Tensor:
    """timm's ``pad_same`` for a side divisible by the stride, where it is the constant (k - 1) d + 1 - s."""
    for side, s in zip(x.shape[-2:], stride):
        torch._check(side % s == 0)
    pad_h, pad_w = (max((k - 1) * d + 1 - s, 0) for k, s, d in zip(kernel_size, stride, dilation))
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=value)


@contextlib.contextmanager
def static_same_padding() -> Iterator[None]:
    """While exporting :class:`Network`: timm's "same" padding as the constant it is on sides that are multiples of
    the network's stride. Computed from the side (as timm does), it nests a ceil and a max per layer into the
    shape expressions, which took torch.export 11 minutes to simplify on a 2-vCPU VM; this takes seconds."""
    import importlib

    conv2d_same = importlib.import_module("timm.layers.conv2d_same")  # the module: timm.layers names a function so
    original = conv2d_same.pad_same
    conv2d_same.pad_same = _pad_same_on_multiples
    try:
        yield
    finally:
        conv2d_same.pad_same = original


def _inside(linear: torch.Tensor) -> torch.Tensor:
    """(3, 1, N) linear RGB -> (1, N) bool: inside the sRGB gamut within the pipeline's tolerance."""
    return ((linear >= -_GAMUT_TOL) & (linear <= 1 + _GAMUT_TOL)).all(dim=0)


class Display(nn.Module):
    """Full-resolution L, a, b (N,) and the photo's RGBA (N, 4) uint8 -> RGBA (N, 4) uint8, its alpha kept:
    ``lab_to_display`` (clamp ab, fit the chroma of colours outside sRGB by bisection keeping L and hue, encode)."""

    def forward(self, l: torch.Tensor, a: torch.Tensor, b: torch.Tensor, rgba: torch.Tensor) -> torch.Tensor:
        lab = torch.stack([l, clamp_ab(a), clamp_ab(b)])[:, None]  # (3, 1, N)
        inside = _inside(_lab_to_linear(lab))
        lo, hi = torch.zeros_like(l)[None], torch.ones_like(l)[None]
        for _ in range(GAMUT_STEPS):  # every pixel bisects (a graph has no cheap branch); the inside keep 1
            mid = (lo + hi) / 2
            ok = _inside(_lab_to_linear(torch.cat([lab[:1], lab[1:] * mid])))
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        scale = torch.where(inside, torch.ones_like(lo), lo)
        linear = _lab_to_linear(torch.cat([lab[:1], lab[1:] * scale]))
        rgb = _linear_to_srgb(linear.clamp(0.0, 1.0))[:, 0]  # (3, N)
        codes = torch.floor(rgb * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)
        return torch.cat([codes, rgba[:, 3][None]]).T
