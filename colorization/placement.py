"""Where a colour hint would help most: a map over a gray photo, and the points a user could be shown.

Computed from the photo's lightness alone (the truth is what the user does not have). Three maps:

- ``"entropy"``: the entropy of a classification model's distribution over ab bins (Zhang et al. 2016), per pixel at
  its render size, smoothed over about a hint's size: where the model cannot decide between colours.
- ``"region"``: the same summed over each region of similar lightness (the pixels a hint's colour would reach
  through the engine's lightness affinity), highest at the region's middle: a hint fills its region, so a big
  uncertain region is worth more than a small one.
- ``"low_chroma"``: where the model's predicted colour is weak (near gray), from any colorizer; a cheap baseline.

Whether any of them beats random placement is measured in ``experiments/hint_placement``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

__all__ = ["Overlay", "METHODS", "overlay", "pick_points", "default_spacing", "simulated_hints_at"]

METHODS = ("entropy", "region", "low_chroma")
# Predicted chroma (ab units) at and above which "low_chroma" counts a pixel as confidently coloured.
_FULL_CHROMA = 30.0
# Neighbours whose lightness differs by less than this (L units) share a region: two sigmas of the engine's
# affinity (colorization.hints.SIGMA), whose weight is exp(-2) there.
_REGION_STEP = 2.0


@dataclass
class Overlay:
    """A "where to click" map of a photo: higher where a hint would help more."""

    score: np.ndarray  # (h, w) float32 in [0, 1] at the network's render resolution
    shape: tuple[int, int]  # the photo's (H, W)
    regions: Optional[np.ndarray] = None  # (h, w) int32 region labels ("region" only): one point per region first

    def at_photo_size(self) -> np.ndarray:
        """The score (H, W) at the photo's size, for display."""
        return cv2.resize(self.score, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_LINEAR)


def _smooth(score: np.ndarray) -> np.ndarray:
    # Over about a hint's size (a simulated hint is a square of side short side / 32).
    sigma = max(1.0, min(score.shape) / 32)
    return cv2.GaussianBlur(score.astype(np.float32), (0, 0), sigma)


def _normalised(score: np.ndarray) -> np.ndarray:
    low, high = float(score.min()), float(score.max())
    return ((score - low) / (high - low) if high > low else np.zeros_like(score)).astype(np.float32)


def _entropy(colorizer, l_small: np.ndarray) -> np.ndarray:
    """Per-pixel entropy (h, w) of the model's distribution over ab bins, in [0, 1] (1 = uniform over all bins)."""
    import torch

    model = colorizer.model
    if getattr(model, "output", None) != "classification":
        raise ValueError("an entropy overlay needs a classification model (weights/classification.safetensors)")
    h, w = l_small.shape
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(l_small, dtype=np.float32))[None, None]
        logits = model(x.to(colorizer.device, memory_format=torch.channels_last), raw=True)[0].float()
        # Every other pixel, bins last: the map is smoothed over a hint's size anyway, and this takes 20 ms instead
        # of 160-220 ms on one CPU core. The model's own distribution (temperature 1): the annealing temperature
        # sharpens colours for display, not the model's belief.
        z = logits[:, ::2, ::2].permute(1, 2, 0)
        entropy = (torch.logsumexp(z, -1) - (torch.softmax(z, -1) * z).sum(-1)) / float(np.log(z.shape[-1]))
    return cv2.resize(entropy.cpu().numpy(), (w, h), interpolation=cv2.INTER_LINEAR)


def _regions(l_small: np.ndarray) -> np.ndarray:
    """Regions (h, w) int32 labels: the pixels joined by steps of lightness under ``_REGION_STEP`` between
    neighbours (4-connected) of the lightly smoothed L, where the engine's affinity (exp(-dL^2 / 2 sigma^2),
    sigma 1) lets one hint's colour spread."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    h, w = l_small.shape
    index = np.arange(h * w).reshape(h, w)
    # Lightly smoothed: the network's resized input carries compression noise that would split every region.
    l = cv2.GaussianBlur(l_small.astype(np.float32), (0, 0), 1.0)
    right = np.abs(l[:, 1:] - l[:, :-1]) < _REGION_STEP
    down = np.abs(l[1:] - l[:-1]) < _REGION_STEP
    rows = np.concatenate([index[:, :-1][right], index[:-1][down]])
    cols = np.concatenate([index[:, 1:][right], index[1:][down]])
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(h * w, h * w))
    return connected_components(graph, directed=False)[1].reshape(h, w).astype(np.int32)


def _region_score(entropy: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each region's summed entropy, highest at its middle (a hint there lies inside it)."""
    count = int(labels.max()) + 1
    total = np.bincount(labels.ravel(), weights=entropy.ravel().astype(np.float64), minlength=count)
    # Distance to the region's border, as a share of the region's largest: 1 at its middle.
    padded = np.pad(labels, 1, constant_values=-1)  # the photo's edge is a border too
    border = np.zeros(labels.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        border |= padded[dy:dy + labels.shape[0], dx:dx + labels.shape[1]] != labels
    distance = cv2.distanceTransform((~border).astype(np.uint8), cv2.DIST_L2, 3)
    largest = np.zeros(count, np.float32)
    np.maximum.at(largest, labels.ravel(), distance.ravel())
    inner = (distance + 1) / (largest[labels] + 1)
    return (total[labels] * inner).astype(np.float32)


def overlay(colorizer, l: np.ndarray, method: str = "entropy", render_size: Optional[int] = None) -> Overlay:
    """The "where to click" map of a photo whose Lab lightness is ``l`` (H, W): see :data:`METHODS`.

    "entropy" and "region" need a classification model (``weights/classification.safetensors``); "low_chroma" takes
    any colorizer. Only L is read: the overlay never sees the photo's colours.
    """
    if method not in METHODS:
        raise ValueError(f"unknown overlay {method!r}; choose one of: {', '.join(METHODS)}")
    l = np.asarray(l)
    if l.ndim != 2:
        raise ValueError(f"an overlay reads the photo's lightness only: an (H, W) array, got shape {l.shape}")
    l_small = colorizer.l_small(l.astype(np.float32), render_size)
    if method == "low_chroma":
        chroma = np.hypot(*np.moveaxis(colorizer.predict_ab_from_small(l_small), -1, 0))
        return Overlay(_normalised(_smooth(1 - np.clip(chroma / _FULL_CHROMA, 0, 1))), l.shape)
    entropy = _smooth(_entropy(colorizer, l_small))
    if method == "entropy":
        return Overlay(_normalised(entropy), l.shape)
    labels = _regions(l_small)
    return Overlay(_normalised(_region_score(entropy, labels)), l.shape, labels)


def default_spacing(shape: tuple[int, int]) -> float:
    """The least distance between suggested points, in photo pixels: an eighth of the short side."""
    return min(shape) / 8


def pick_points(over: Overlay, count: int, spacing: Optional[float] = None) -> list[tuple[int, int]]:
    """``count`` points (x, y) in photo pixels, best first: greedily the highest score at least ``spacing`` photo
    pixels (default :func:`default_spacing`) from every point chosen before (with regions, in a region not chosen
    before while one is left). When no pixel is that far from all of them, the spacing is halved. Deterministic.
    """
    h, w = over.score.shape
    height, width = over.shape
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    count = min(count, h * w)
    spacing = default_spacing(over.shape) if spacing is None else float(spacing)
    # In render pixels: the map's scale (the same on both axes up to rounding).
    step = np.sqrt((height * width) / (h * w))
    radius = spacing / step
    yy, xx = np.mgrid[:h, :w]
    chosen: list[tuple[int, int]] = []
    used_regions: set[int] = set()
    free = np.ones((h, w), bool)
    while len(chosen) < count:
        candidates = free
        if over.regions is not None:
            fresh = free & ~np.isin(over.regions, list(used_regions))
            if fresh.any():
                candidates = fresh
        if not candidates.any():  # the photo is full at this spacing: halve it, keep the points
            radius /= 2
            free = np.ones((h, w), bool)
            for i, j in chosen:
                free &= (yy - i) ** 2 + (xx - j) ** 2 >= radius * radius
            free[tuple(np.array(chosen).T)] = False
            continue
        index = int(np.argmax(np.where(candidates, over.score, -np.inf)))
        i, j = divmod(index, w)
        chosen.append((i, j))
        if over.regions is not None:
            used_regions.add(int(over.regions[i, j]))
        free &= (yy - i) ** 2 + (xx - j) ** 2 >= radius * radius
        free[i, j] = False
    return [(min(width - 1, int((j + 0.5) * width / w)), min(height - 1, int((i + 0.5) * height / h)))
            for i, j in chosen]


def simulated_hints_at(truth: np.ndarray, points: list[tuple[int, int]]):
    """The hints of :func:`colorization.hints.simulated_hints` (squares of side max(3, short side / 32), each filled
    with the photo's mean colour there) centred at chosen ``points`` (x, y) instead of random ones: an RGBA image.

    For measuring placements only: the colours come from the truth, so two placements differ only in where.
    """
    from PIL import Image

    h, w = truth.shape[:2]
    side = max(3, round(min(h, w) / 32))
    hints = np.zeros((h, w, 4), np.uint8)
    for x, y in points:
        top = int(np.clip(y - side // 2, 0, max(0, h - side)))
        left = int(np.clip(x - side // 2, 0, max(0, w - side)))
        patch = truth[top : top + side, left : left + side].reshape(-1, truth.shape[2])[:, :3]
        hints[top : top + side, left : left + side] = (*np.rint(patch.mean(axis=0)).astype(np.uint8), 255)
    return Image.fromarray(hints, "RGBA")
