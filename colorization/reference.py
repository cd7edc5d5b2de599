"""Colour like a reference photo: confident matches between two photos become hints for the hint engine.

Training-free, as Gupta et al. (2012) and UniColor's exemplar mode: both photos' L go through the network's own
encoder; each cell of a grid over the photo is matched to the reference's cell of most similar features (cosine).
Only mutual nearest neighbours of enough similarity and similar lightness are kept; each gives a hint at its own
cell's centre, of Zhang et al. (2019)'s warped colour (the reference cells' ab under a softmax of the similarity at
temperature 0.01), spread along the photo's edges by :func:`colorization.hints.propagate`. A reference of another
scene finds few mutual matches, and under ``MIN_SHARE`` of the photo's cells it gives none at all (the gate).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .color import is_grayish, lab_to_display, normalize_l, rgb_to_l, rgb_to_lab
from .images import MAX_MEGAPIXELS, ImageError, as_float, read_image, to_rgb_array
from .models import unwrap

__all__ = ["Reference", "ReferenceMatches", "prepare_reference", "match_reference", "reference_hints",
           "merge_hints", "MATCH_STRIDE", "TEMPERATURE", "MIN_CONFIDENCE", "MIN_SIMILARITY", "MAX_L_DIFFERENCE",
           "MIN_SHARE", "NO_COLOUR"]

# The grid the photos are matched on, in render pixels: one cell of 4 x 4 (a 128 px render has 32 cells a side).
MATCH_STRIDE = 4
# Zhang et al. (2019), NonlocalNet: a softmax over the reference's cells of cosine similarity / 0.01.
TEMPERATURE = 0.01
# A match is kept when it is a mutual nearest neighbour, its cosine similarity is at least MIN_SIMILARITY and the two
# cells' mean L differ by at most MAX_L_DIFFERENCE; a reference with fewer kept matches than MIN_SHARE of the photo's
# cells gives no hint at all. Chosen on 100 photos no shipped model trained on (experiments/reference): the mutual
# test is what tells an unrelated reference apart (without it half of them passed a 5 % gate and cost 0.38 dB);
# a softmax confidence (MIN_CONFIDENCE) and a limit on the likely matches' colour spread (MAX_SPREAD) cost gain or
# changed nothing there, so both are off by default and kept as arguments for the study.
MIN_SIMILARITY = 0.6
MUTUAL = True
MAX_L_DIFFERENCE = 10.0
MIN_SHARE = 0.05
MIN_CONFIDENCE = 0.0
MAX_SPREAD = None
NO_COLOUR = "the reference has no colour to give: it is a gray photo"
ReferenceLike = Union[Image.Image, np.ndarray, str, os.PathLike]


@dataclass
class Reference:
    """A reference photo ready for matching: L and ab at the network's render resolution, and its full size."""

    l: np.ndarray  # (h, w) float32 Lab L at the render resolution
    ab: np.ndarray  # (h, w, 2) float32 Lab ab, its true colours at that resolution
    size: tuple[int, int]  # (width, height) of the reference as given
    features: dict = field(default_factory=dict, repr=False)  # cache: id of the model -> its cell features


@dataclass
class ReferenceMatches:
    """What a reference gave one photo: hints at the render resolution and the matches they came from.

    ``points`` are in full-size pixels: (photo x, photo y, reference x, reference y, (r, g, b), confidence), one per
    kept match, what the app draws. ``share`` is the kept matches' share of the photo's cells; ``gated`` is True when
    that share was under ``MIN_SHARE`` and no hint was given.
    """

    hint_ab: np.ndarray  # (h, w, 2) Lab ab
    hint_weight: np.ndarray  # (h, w) in [0, 1]
    points: list = field(default_factory=list)
    share: float = 0.0
    gated: bool = False

    def hint_points(self, radius: float = 3.0) -> list:
        """The kept matches as :data:`~colorization.hints.HintPoint` on the photo (for ``hint_image``)."""
        return [(x, y, colour, radius) for x, y, _, _, colour, _ in self.points]

    def reference_points(self, radius: float = 3.0) -> list:
        """The same matches as points on the reference, where their colours were taken."""
        return [(rx, ry, colour, radius) for _, _, rx, ry, colour, _ in self.points]


def prepare_reference(image: ReferenceLike, shape: tuple[int, int],
                      max_megapixels: float = MAX_MEGAPIXELS) -> Reference:
    """A reference (PIL image, array or path) resized to the render ``shape``'s scale: its short side that of
    ``shape`` (h, w). ImageError, naming the reference, for a non-image, a huge one or a gray one
    (:data:`NO_COLOUR`)."""
    try:
        if isinstance(image, (str, os.PathLike)):
            image = read_image(Path(image), max_megapixels)
        rgb, _ = to_rgb_array(image, max_megapixels)
    except ImageError as exc:  # the message names the file when there is one: "reference x.txt: not an image ..."
        raise ImageError(f"reference {exc}" if isinstance(image, (str, os.PathLike)) else f"reference: {exc}") from None
    # A plain chroma test (tint_chroma 0 turns off the toned-photo rule): a sepia reference still has colour to give.
    if is_grayish(rgb, tint_chroma=0.0):
        raise ImageError(NO_COLOUR)
    height, width = rgb.shape[:2]
    scale = min(shape) / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(as_float(rgb), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    lab = rgb_to_lab(np.clip(small, 0.0, 1.0))
    return Reference(l=np.ascontiguousarray(lab[..., 0]), ab=np.ascontiguousarray(lab[..., 1:]),
                     size=(width, height))


@torch.inference_mode()
def _cell_features(model: torch.nn.Module, l: np.ndarray, stride: int) -> torch.Tensor:
    """The encoder's features of L (h, w) on the grid of ``stride``: (cells, channels), each part unit length.

    The stride-8 and stride-16 features (an EfficientNet encoder's or the U-Net's down path), bilinear on the grid,
    each normalised, then joined: the first says what a patch looks like, the second what it belongs to.
    """
    net = unwrap(model)
    device = next(net.parameters()).device
    h, w = l.shape
    pad_h, pad_w = -h % net.stride, -w % net.stride
    x = normalize_l(torch.from_numpy(np.ascontiguousarray(l, dtype=np.float32)))[None, None].to(device)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if pad_h < h and pad_w < w else "replicate")
    if hasattr(net, "encoder"):
        feats = net.encoder(x.expand(-1, 3, -1, -1))[2:4]  # strides 8 and 16
    else:  # the U-Net: stem at stride 1, each down block halves
        feats, y = [], net.stem(x)
        for block in net.down:
            y = block(y)
            feats.append(y)
        feats = (feats[2:4] if len(feats) >= 4 else feats[-2:]) or [y]
    grid = (-(-h // stride), -(-w // stride))
    parts = []
    for f in feats:
        # crop the padding's share first, so the grid covers the photo only
        f = f[..., : -(-h * f.shape[-2] // x.shape[-2]), : -(-w * f.shape[-1] // x.shape[-1])]
        f = F.interpolate(f.float(), size=grid, mode="bilinear", align_corners=False)
        parts.append(F.normalize(f[0].flatten(1).T, dim=1))
    return torch.cat(parts, dim=1) / np.sqrt(len(parts))


def _cells(values: np.ndarray, stride: int) -> np.ndarray:
    """The mean of ``values`` (h, w[, c]) over each cell of the grid: (cells, c)."""
    h, w = values.shape[:2]
    grid = (-(-w // stride), -(-h // stride))
    pooled = cv2.resize(np.ascontiguousarray(values, dtype=np.float32), grid, interpolation=cv2.INTER_AREA)
    return pooled.reshape(grid[0] * grid[1], -1)


def reference_hints(colorizer, l_small: np.ndarray, reference: Reference, full_shape: Optional[tuple[int, int]] = None,
                    stride: int = MATCH_STRIDE, temperature: float = TEMPERATURE,
                    min_confidence: float = MIN_CONFIDENCE, min_similarity: float = MIN_SIMILARITY,
                    max_l_difference: float = MAX_L_DIFFERENCE, min_share: float = MIN_SHARE,
                    max_spread: Optional[float] = MAX_SPREAD, mutual: bool = MUTUAL) -> ReferenceMatches:
    """Hints for a photo whose L at the render resolution is ``l_small``, from the confident matches with
    ``reference``; ``full_shape`` (H, W) of the photo places ``points`` in its pixels (default: the render's)."""
    key = (id(unwrap(colorizer.model)), stride)
    if key not in reference.features:
        reference.features[key] = _cell_features(colorizer.model, reference.l, stride)
    ref_features = reference.features[key]
    features = _cell_features(colorizer.model, l_small, stride)
    similarity = (features @ ref_features.T).cpu()  # (photo cells, reference cells), cosine
    best_similarity, best = similarity.max(dim=1)
    weights = torch.softmax(similarity / temperature, dim=1)
    confidence = weights.max(dim=1).values
    # Zhang et al.'s warped colour: the softmax's mean of the reference cells' ab; its spread says whether the likely
    # matches agree on the colour (cells of one repeated texture are ambiguous matches but one colour).
    ref_cells_ab = torch.from_numpy(_cells(reference.ab, stride))
    colour = weights @ ref_cells_ab
    photo_l, ref_l = _cells(l_small, stride)[:, 0], _cells(reference.l, stride)[:, 0]
    best_np = best.numpy()
    keep = ((confidence >= min_confidence) & (best_similarity >= min_similarity)).numpy()
    if mutual:
        keep &= (similarity.argmax(dim=0)[best] == torch.arange(len(best))).numpy()
    if max_spread is not None:
        spread = ((weights @ (ref_cells_ab**2).sum(1)) - (colour**2).sum(1)).clamp_min(0).sqrt()
        keep &= spread.numpy() <= max_spread
    keep &= np.abs(photo_l - ref_l[best_np]) <= max_l_difference
    h, w = l_small.shape
    hint_ab, hint_weight = np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32)
    share = float(keep.mean())
    if share < min_share:
        return ReferenceMatches(hint_ab, hint_weight, share=share, gated=True)
    cells = np.flatnonzero(keep)
    ref_ab = colour.numpy()[cells].astype(np.float32)
    grid_w, ref_grid_w = -(-w // stride), -(-reference.l.shape[1] // stride)
    # each hint at its cell's centre pixel: the engine spreads it within the cell's region, stopped by its edges
    ys = np.minimum((cells // grid_w) * stride + stride // 2, h - 1)
    xs = np.minimum((cells % grid_w) * stride + stride // 2, w - 1)
    hint_ab[ys, xs] = ref_ab
    hint_weight[ys, xs] = 1.0
    points = _points(cells, best_np[cells], grid_w, ref_grid_w, stride, (h, w), full_shape or (h, w),
                     reference, l_small[ys, xs], ref_ab, confidence.cpu().numpy()[cells])
    return ReferenceMatches(hint_ab, hint_weight, points, share, False)


def _points(cells, ref_cells, grid_w, ref_grid_w, stride, shape, full_shape, reference, l, ab, confidence) -> list:
    """The kept matches in full-size pixels of both photos, each with its hint's colour at the photo's L."""
    sy, sx = full_shape[0] / shape[0], full_shape[1] / shape[1]
    ry, rx = reference.size[1] / reference.l.shape[0], reference.size[0] / reference.l.shape[1]
    rgb = lab_to_display(np.concatenate([l[:, None], ab], axis=1)[None].astype(np.float32))[0]
    points = []
    for cell, ref_cell, colour, c in zip(cells, ref_cells, rgb, confidence):
        (x, y), (ref_x, ref_y) = _centre(cell, grid_w, stride, shape), _centre(ref_cell, ref_grid_w, stride,
                                                                                reference.l.shape)
        points.append((x * sx, y * sy, ref_x * rx, ref_y * ry, tuple(int(v) for v in colour), float(c)))
    return points


def _centre(cell: int, grid_w: int, stride: int, shape: tuple[int, int]) -> tuple[float, float]:
    """(x, y) of a cell's centre in render pixels; a border cell is partly outside the image: its inner part's."""
    x0, y0 = (cell % grid_w) * stride, (cell // grid_w) * stride
    return (x0 + min(stride, shape[1] - x0) / 2, y0 + min(stride, shape[0] - y0) / 2)


def merge_hints(user: Optional[tuple[np.ndarray, np.ndarray]],
                matched: Optional[ReferenceMatches]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """One (ab, weight) from a user's hints and a reference's: the user's win wherever they were given."""
    if matched is None or not matched.hint_weight.any():
        return user
    if user is None:
        return matched.hint_ab, matched.hint_weight
    user_ab, user_weight = user
    mine = user_weight > 0
    return (np.where(mine[..., None], user_ab, matched.hint_ab).astype(np.float32),
            np.where(mine, user_weight, matched.hint_weight).astype(np.float32))


def match_reference(colorizer, image, reference: ReferenceLike, render_size: Optional[int] = None) -> ReferenceMatches:
    """The matches a reference gives a photo (any image the pipeline takes), as the pipeline would use them: for
    showing them (``points``: where each colour was taken from and put)."""
    # the photo's L as pipeline.prepare makes it (pipeline imports this module, so this one does not import it)
    l = rgb_to_l(to_rgb_array(image)[0])
    l_small = colorizer.l_small(l, render_size)
    if not isinstance(reference, Reference):
        reference = prepare_reference(reference, l_small.shape)
    return reference_hints(colorizer, l_small, reference, l.shape)
