"""User colour hints: spread a few wanted colours over a colorization, following the photo's edges.

Levin, Lischinski and Weiss (2004), "Colorization using Optimization": neighbouring pixels with similar
lightness should get similar colours. Here it spreads the *residual* (wanted ab minus the network's ab) from
the hinted pixels, with a small pull to zero so that regions far from every hint keep the network's colours.
It runs at the network's render resolution and only the residual is upsampled, so a large photo costs no
more than a small one.
"""

from __future__ import annotations

from typing import Iterable, Sequence, Union

import cv2
import numpy as np
from PIL import Image
from .color import rgb_to_lab

__all__ = ["HintPoint", "hint_image", "hints_at", "propagate", "simulated_hints", "SIGMA", "PULL"]

# Lightness scale of the affinity exp(-dL^2 / 2 sigma^2), in L units, and the pull of the residual to zero.
SIGMA = 8.0
PULL = 1e-3
_HINT_WEIGHT = 1e3  # hinted pixels are nearly hard constraints
HintPoint = tuple[float, float, Union[str, Sequence[int]], float]  # (x, y, colour, radius) in photo pixels


def hint_image(points: Iterable[HintPoint], size: tuple[int, int]) -> Image.Image:
    """An RGBA hint image of ``size`` (width, height): an opaque disc of each point's colour, transparent elsewhere.

    A colour is a name or ``#rrggbb`` Pillow understands, or an (r, g, b) triple.
    """
    from PIL import ImageColor, ImageDraw

    image = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for x, y, colour, radius in points:
        rgb = ImageColor.getrgb(colour) if isinstance(colour, str) else tuple(int(c) for c in colour[:3])
        r = max(float(radius), 0.5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(*rgb[:3], 255))
    return image


def hints_at(hints: Union[Image.Image, np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The hints' ab (h, w, 2) and weight (h, w) in [0, 1] at ``shape`` (the render resolution).

    ``hints`` is RGBA (PIL or uint8 array) of the photo's size; opaque pixels carry a colour, of which only the
    chroma is used. Each render pixel takes the mean ab of the hinted pixels it covers and, as weight, the
    share it covers.
    """
    rgba = np.asarray(hints.convert("RGBA") if isinstance(hints, Image.Image) else hints)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"hints must be an RGBA image (or an (H, W, 4) uint8 array), got {rgba.shape} {rgba.dtype}")
    opaque = rgba[..., 3] > 127
    alpha = opaque.astype(np.float32)
    ab = np.zeros(opaque.shape + (2,), np.float32)
    ab[opaque] = rgb_to_lab(rgba[opaque][:, :3].astype(np.float32) / 255)[:, 1:]  # hints are few: convert only them
    h, w = shape
    interp = cv2.INTER_AREA if h <= rgba.shape[0] and w <= rgba.shape[1] else cv2.INTER_LINEAR
    weight = cv2.resize(alpha, (w, h), interpolation=interp)
    summed = cv2.resize(np.ascontiguousarray(ab), (w, h), interpolation=interp)
    covered = weight > 1e-3
    hint_ab = np.where(covered[..., None], summed / np.maximum(weight, 1e-3)[..., None], 0.0)
    return hint_ab.astype(np.float32), np.where(covered, np.minimum(weight * 4, 1.0), 0.0).astype(np.float32)


def propagate(l: np.ndarray, ab: np.ndarray, hint_ab: np.ndarray, hint_weight: np.ndarray,
              sigma: float = SIGMA, pull: float = PULL) -> np.ndarray:
    """The network's ab (h, w, 2) corrected towards the hints, spread along L (h, w) by an edge-aware solve.

    Minimises sum_ij a_ij |r_i - r_j|^2 + pull * sum_i |r_i|^2 + sum_i c_i |r_i - (hint_i - ab_i)|^2 over
    the residual r, with a_ij = exp(-(L_i - L_j)^2 / 2 sigma^2) over 8 neighbours and c_i the hint weight.
    """
    from scipy.sparse import coo_matrix, diags  # SciPy comes with scikit-image; only hints need it
    from scipy.sparse.linalg import splu

    h, w = l.shape
    if not hint_weight.any():
        return ab
    index = np.arange(h * w).reshape(h, w)
    rows, cols, weights = [], [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):  # each undirected neighbour pair once
        a = index[: h - dy, max(0, -dx) : w - max(0, dx)]  # pixel (y, x) ...
        b = index[dy:, max(0, dx) : w - max(0, -dx)]  # ... and its neighbour (y + dy, x + dx)
        la, lb = l.ravel()[a.ravel()], l.ravel()[b.ravel()]
        weight = np.exp(-((la - lb) ** 2) / (2 * sigma**2))
        if dy and dx:
            weight = weight / np.sqrt(2)  # diagonal neighbours are farther away
        rows += [a.ravel(), b.ravel()]
        cols += [b.ravel(), a.ravel()]
        weights += [weight, weight]
    affinity = coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(h * w, h * w)).tocsr()
    constraint = _HINT_WEIGHT * hint_weight.ravel().astype(np.float64)
    system = diags(np.asarray(affinity.sum(axis=1)).ravel() + pull + constraint) - affinity
    target = (hint_ab - ab).reshape(-1, 2).astype(np.float64) * constraint[:, None]
    residual = splu(system.tocsc()).solve(target)
    return (ab + residual.reshape(h, w, 2)).astype(np.float32)


def simulated_hints(truth: np.ndarray, count: int, seed: int) -> Image.Image:
    """``count`` hints a user could have given, taken from a colour photo (H, W, 3 uint8) itself: the protocol of
    ``evaluate --hints``.

    Each is a square of side max(3, short side / 32) pixels of the photo (5 x 5 at 160 px, as Zhang et al.
    2017's patches are at 256), placed uniformly at random (numpy's generator seeded with ``seed``), filled
    with the photo's mean colour over that square.
    """
    h, w = truth.shape[:2]
    side = max(3, round(min(h, w) / 32))
    rng = np.random.default_rng(seed)
    hints = np.zeros((h, w, 4), np.uint8)
    for _ in range(count):
        top, left = int(rng.integers(0, max(1, h - side + 1))), int(rng.integers(0, max(1, w - side + 1)))
        patch = truth[top : top + side, left : left + side].reshape(-1, truth.shape[2])[:, :3]
        hints[top : top + side, left : left + side] = (*np.rint(patch.mean(axis=0)).astype(np.uint8), 255)
    return Image.fromarray(hints, "RGBA")
