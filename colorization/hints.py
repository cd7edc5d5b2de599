"""User colour hints: spread a few wanted colours over a colorization, following the photo's edges.

Levin, Lischinski and Weiss (2004), "Colorization using Optimization": neighbouring pixels with similar
lightness should get similar colours. Here it spreads the *residual* (wanted ab minus the network's ab) from
the hinted pixels, with a pull to zero that grows with the distance from the hints, so that a hint fills its
surroundings and regions far from every hint keep the network's colours.
It runs at the network's render resolution and only the residual is upsampled, so a large photo costs no
more than a small one.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import cv2
import numpy as np
from PIL import Image
from .color import lab_to_display, rgb_to_lab

__all__ = ["HintPoint", "hint_image", "hints_at", "hint_tensor", "rgba_hints", "propagate", "simulated_hints",
           "suggested_colours", "training_hints", "leak_probe", "leak", "SIGMA", "SIGMA_AB", "PULL", "GEODESIC",
           "REACH", "reach_settings"]

# Lightness scale of the affinity exp(-dL^2 / 2 sigma^2) in L units, the same for the network's ab, and the pull of
# the residual to zero. Chosen on both sides of the hint protocol, on 100 photos no shipped model trained on
# (experiments/hint_propagation, "two sides"): of the settings whose one-dot leak stays under 10 %, the one that
# leaks least within 0.1 dB of the most gain at 10 hints (a margin: a selection set's leak need not hold elsewhere). The
# earlier sigma 4 won PSNR alone by spreading every hint over the whole photo (97 % leak); with sigma 1 a step of
# a few L units is a wall, and the pull can stay small so a hint still fills its own region.
SIGMA = 1.0
SIGMA_AB = 0.5
# A weak pull near the hints that grows with the distance from them (``geodesic``: the pull is multiplied by
# 1 + (d / (GEODESIC x short side))^2, d the distance along the photo), so a hint fills its own surroundings and stops
# further away. Against a uniform pull of 3e-5 (experiments/hint_propagation, "A pull that grows with the distance"):
# more gain and less leak on the selection and on every evaluation folder.
PULL = 1e-6
GEODESIC = 0.12
# How far a user's colours reach: their object (the settings above), or the whole photo along its strong edges, for a
# colour cast of the whole photo (a warmer photo, a bluer sky and sea): sigma 4 on L alone with a uniform pull of
# 3e-5, the setting PSNR alone once chose because it spreads every hint over 97 % of the photo's other colours
# (experiments/hint_propagation).
REACH = {"object": {"sigma": SIGMA, "sigma_ab": SIGMA_AB},
         "photo": {"sigma": 4.0, "sigma_ab": None, "pull": 3e-5, "geodesic": None}}
# Affinities that know objects, measured and off (experiments/hint_propagation, "Affinities that know objects"): KNN
# links to each pixel's KNN nearest pixels in (L, the network's ab, x / KNN_XY, y / KNN_XY), and a bilateral grid
# (cells of GRID_XY pixels, GRID_L L units, GRID_AB ab units) whose solve gives the pull its target. Both gained
# 0.3-0.4 dB at the same leak of one dot, but a stroke across several regions leaked 18-24 % against 13.8 %.
KNN = 0
KNN_WEIGHT = 0.0
KNN_XY = 8.0
GRID_XY, GRID_L, GRID_AB, GRID_PULL, GRID_REACH = None, 8.0, 8.0, 0.3, 0
_HINT_WEIGHT = 1e3  # hinted pixels are nearly hard constraints
MAX_SOLVE_PIXELS = 1 << 16  # the largest propagation solved directly (256 x 256): about 0.1-0.2 s on one core
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


def rgba_hints(image: Image.Image) -> Image.Image:
    """A hint image as RGBA; ValueError for one without transparency, where every pixel would be a hint."""
    if "A" not in image.getbands() and "transparency" not in image.info:
        raise ValueError("hints need transparency: an RGBA image whose opaque pixels carry the wanted colours "
                         f"(got a {image.mode} image, where every pixel would be a hint)")
    return image.convert("RGBA")


def hints_at(hints: Union[Image.Image, np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The hints' ab (h, w, 2) and weight (h, w) in [0, 1] at ``shape`` (the render resolution).

    ``hints`` is RGBA (PIL or uint8 array) of the photo's size; opaque pixels carry a colour, of which only the
    chroma is used. Each render pixel takes the mean ab of the hinted pixels it covers and, as weight, the
    share it covers.
    """
    rgba = np.asarray(rgba_hints(hints) if isinstance(hints, Image.Image) else hints)
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


def hint_tensor(hints: Union[Image.Image, np.ndarray], shape: tuple[int, int]):
    """(3, h, w) float32 tensor of :func:`hints_at`'s ab (Lab units) and weight: the ``hints`` input of a hint model."""
    import torch

    ab, weight = hints_at(hints, (int(shape[0]), int(shape[1])))
    return torch.from_numpy(np.dstack([ab, weight])).permute(2, 0, 1).contiguous()


def reach_settings(reach: str) -> dict:
    """:func:`propagate`'s keyword arguments for a reach of :data:`REACH` ("object" or "photo"); ValueError else."""
    if reach not in REACH:
        raise ValueError(f"unknown reach {reach!r}; choose one of: {', '.join(REACH)}")
    return REACH[reach]


def propagate(l: np.ndarray, ab: np.ndarray, hint_ab: np.ndarray, hint_weight: np.ndarray,
              sigma: float = SIGMA, pull: float = PULL, max_pixels: int = MAX_SOLVE_PIXELS,
              sigma_ab: Optional[float] = SIGMA_AB, knn: int = KNN, knn_weight: float = KNN_WEIGHT,
              knn_xy: float = KNN_XY, knn_sigma: Optional[float] = None, features: Optional[np.ndarray] = None,
              sigma_features: Optional[float] = None, grid_xy: Optional[float] = GRID_XY, grid_l: float = GRID_L,
              grid_ab: Optional[float] = GRID_AB, grid_pull: float = GRID_PULL,
              grid_reach: int = GRID_REACH, grid_features: Optional[float] = None,
              geodesic: Optional[float] = GEODESIC, geodesic_l: float = 4.0,
              geodesic_ab: Optional[float] = None, pull_l: Optional[float] = None) -> np.ndarray:
    """The network's ab (h, w, 2) corrected towards the hints, spread along L (h, w) by an edge-aware solve.

    Minimises sum_ij a_ij |r_i - r_j|^2 + sum_i pull_i |r_i|^2 + sum_i c_i |r_i - (hint_i - ab_i)|^2 over
    the residual r, with a_ij = exp(-(L_i - L_j)^2 / 2 sigma^2) over 8 neighbours and c_i the hint weight.
    With ``sigma_ab`` the network's own colour edges count too: a_ij is also multiplied by
    exp(-|ab_i - ab_j|^2 / 2 sigma_ab^2), so a correction stops where the predicted colour changes (None: L alone);
    ``features`` (h, w, c) with ``sigma_features`` join them the same way (for instance the network's own features).
    With ``knn`` > 0 each pixel is also linked to its ``knn`` nearest pixels in that space with x and y scaled by
    ``knn_xy`` pixels and L by ``knn_sigma`` (default ``sigma``), weight ``knn_weight`` times the same Gaussian of
    their distance (Chen et al. 2012, KNN matting): a hint crosses the texture of its object. With ``grid_xy`` the
    pull draws the residual to a bilateral grid's solution instead of to zero (:func:`_grid_residual`; cells of
    ``grid_xy`` pixels, ``grid_l`` L, ``grid_ab`` ab and, with ``grid_features``, ``features`` in cells of that size).
    With ``geodesic`` the pull grows with each pixel's distance d from the nearest hint along the photo (a step across
    ``geodesic_l`` L units costing one pixel more): pull * (1 + (d / (geodesic * short side))^2), so a weak pull lets
    a hint fill its surroundings and the growing one stops it further away (None: the same pull everywhere); with
    ``geodesic_ab`` a step across that many units of the network's ab costs one pixel more too. With ``pull_l`` the
    pull is also multiplied by 1 + (|L - L of the nearest hinted pixel| / pull_l)^2: a pixel much lighter or darker
    than the hint is held back even where a smooth shading joins them.
    Above ``max_pixels`` the residual is solved on a smaller copy and upsampled: the solve's time and memory
    grow faster than its size, and a large render size must not buy seconds.
    """
    h, w = l.shape
    if not hint_weight.any():
        return ab
    if h * w > max_pixels:
        scale = np.sqrt(max_pixels / (h * w))
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        small = [cv2.resize(np.ascontiguousarray(a, dtype=np.float32), size, interpolation=cv2.INTER_AREA)
                 for a in (l, ab, hint_ab * hint_weight[..., None], hint_weight)]
        small_features = None
        if features is not None:  # a channel at a time: OpenCV's area resize takes at most 4 at a scale like this
            channels = np.asarray(features, dtype=np.float32).reshape(h, w, -1)
            small_features = np.dstack([cv2.resize(np.ascontiguousarray(channels[..., c]), size,
                                                   interpolation=cv2.INTER_AREA) for c in range(channels.shape[-1])])
        covered = small[3] > 1e-3
        small_hint_ab = np.where(covered[..., None], small[2] / np.maximum(small[3], 1e-3)[..., None], 0.0)
        # The pull sums over pixels while the smoothness term does not change with resolution: scaled by the
        # pixel count, the copy's solution matches the full-size one. Distances in pixels shrink with the copy.
        residual = propagate(small[0], small[1], small_hint_ab.astype(np.float32), np.where(covered, small[3], 0.0),
                             sigma, pull * h * w / (size[0] * size[1]), max_pixels, sigma_ab, knn, knn_weight,
                             knn_xy * size[0] / w, knn_sigma, small_features, sigma_features,
                             grid_xy * size[0] / w if grid_xy else None, grid_l, grid_ab, grid_pull, grid_reach,
                             grid_features, geodesic, geodesic_l, geodesic_ab, pull_l) - small[1]
        return ab + cv2.resize(residual, (w, h), interpolation=cv2.INTER_LINEAR)
    prior = None
    if grid_xy:
        prior = _grid_residual(l, ab, hint_ab, hint_weight, grid_xy, grid_l, grid_ab, grid_pull, grid_reach,
                               features if grid_features else None, grid_features)
    if geodesic:
        distance = _geodesic_distance(l, hint_weight, geodesic_l, ab if geodesic_ab else None, geodesic_ab)
        pull = pull * (1 + (distance / (geodesic * min(h, w))) ** 2)
    if pull_l:
        from scipy.ndimage import distance_transform_edt

        nearest = distance_transform_edt(hint_weight <= 0, return_distances=False, return_indices=True)
        pull = pull * (1 + ((l - l[tuple(nearest)]) / pull_l) ** 2)
    return _solve(l, ab, hint_ab, hint_weight, sigma, pull, sigma_ab, knn, knn_weight, knn_xy, knn_sigma, features,
                  sigma_features, prior)


def _geodesic_distance(l: np.ndarray, hint_weight: np.ndarray, per_l: float, ab: Optional[np.ndarray] = None,
                       per_ab: Optional[float] = None) -> np.ndarray:
    """Each pixel's distance (h, w) to the nearest hinted pixel along the photo, a step across an L change of
    ``per_l`` (and, with ``ab``, an ab change of ``per_ab``) costing one pixel more."""
    from skimage.graph import MCP_Geometric

    gy, gx = np.gradient(l.astype(np.float64))
    cost = 1 + np.hypot(gx, gy) / per_l
    if ab is not None and per_ab:
        grads = [np.gradient(ab[..., c].astype(np.float64)) for c in range(2)]
        cost += np.sqrt(sum(g[0] ** 2 + g[1] ** 2 for g in grads)) / per_ab
    costs, _ = MCP_Geometric(cost).find_costs(np.argwhere(hint_weight > 0))
    return costs


def _grid_residual(l: np.ndarray, ab: np.ndarray, hint_ab: np.ndarray, hint_weight: np.ndarray, cell_xy: float,
                   cell_l: float, cell_ab: Optional[float], pull: float, reach: int,
                   features: Optional[np.ndarray] = None, cell_features: Optional[float] = None) -> np.ndarray:
    """The hints' residual (h, w, 2) spread over a bilateral grid of (x, y, L[, a, b]) cells (Barron and Poole 2016's
    space, each pixel in its nearest cell): cells next to each other in every dimension are linked, and with
    ``reach`` > 0 also cells of the same (L, a, b) up to ``reach`` cells apart in x and y (non-local links: a
    hint reaches the other parts of its object). Small (a few thousand cells), so a direct solve stays fast."""
    from scipy.sparse import coo_matrix, diags
    from scipy.sparse.linalg import splu

    h, w = l.shape
    reach = int(reach)
    yy, xx = np.mgrid[:h, :w]
    coords = [np.rint(yy / cell_xy), np.rint(xx / cell_xy), np.rint(l / cell_l)]
    if cell_ab:
        coords += [np.rint(ab[..., 0] / cell_ab), np.rint(ab[..., 1] / cell_ab)]
    if features is not None:
        coords += [np.rint(c / cell_features) for c in features.reshape(h, w, -1).transpose(2, 0, 1)]
    coords = np.stack([c.ravel().astype(np.int64) for c in coords], axis=1)
    coords -= coords.min(axis=0) - 1  # every coordinate >= 1, so a neighbour's -1 stays >= 0
    span = coords.max(axis=0) + 2 + reach
    radix = np.cumprod(np.concatenate([[1], span[:0:-1]]))[::-1]  # mixed-radix key of a cell
    keys, cell = np.unique(coords @ radix, return_inverse=True)
    m = len(keys)
    count = np.bincount(cell, minlength=m).astype(np.float64)
    weight = _HINT_WEIGHT * hint_weight.ravel().astype(np.float64)
    hinted = np.bincount(cell, weight, m)
    target = np.stack([np.bincount(cell, weight * (hint_ab - ab)[..., c].ravel(), m) for c in range(2)], axis=1)
    offsets = [np.eye(len(span), dtype=np.int64)[d] for d in range(len(span))]
    offsets += [np.array([dy, dx] + [0] * (len(span) - 2)) for dy in range(0, reach + 1)
                for dx in range(-reach, reach + 1) if (dy, dx) > (0, 0) and (dy, dx) != (0, 1) and (dy, dx) != (1, 0)]
    rows, cols, links = [], [], []
    for offset in offsets:
        other = keys + offset @ radix
        at = np.minimum(np.searchsorted(keys, other), m - 1)
        found = keys[at] == other
        rows.append(np.flatnonzero(found))
        cols.append(at[found])
        # a link as strong as the pixels it joins; a farther non-local link weaker
        links.append(np.sqrt(count[found] * count[at[found]]) / max(1.0, float(np.hypot(*offset[:2]))))
    rows, cols, links = (np.concatenate(a) for a in (rows, cols, links))
    degree = np.bincount(rows, links, m) + np.bincount(cols, links, m)
    system = (diags(degree + pull * count + hinted) - coo_matrix((links, (rows, cols)), shape=(m, m))
              - coo_matrix((links, (cols, rows)), shape=(m, m))).tocsc()
    lu = splu(system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0, options={"SymmetricMode": True})
    return lu.solve(target)[cell].reshape(h, w, 2)


def _knn_links(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's ``k`` nearest other points (n, d): (rows, columns, squared distances), each pair once."""
    from scipy.spatial import cKDTree

    n = len(points)
    k = min(k, n - 1)
    distance, index = cKDTree(points).query(points, k=k + 1)
    rows, cols = np.repeat(np.arange(n), k), index[:, 1:].ravel()
    d2 = distance[:, 1:].ravel() ** 2
    # i in j's list and j in i's: keep the pair once (the lower index first), so no link counts twice
    low, high = np.minimum(rows, cols), np.maximum(rows, cols)
    _, first = np.unique(low.astype(np.int64) * n + high, return_index=True)
    return low[first], high[first], d2[first]


def _solve(l: np.ndarray, ab: np.ndarray, hint_ab: np.ndarray, hint_weight: np.ndarray, sigma: float,
           pull: float, sigma_ab: Optional[float], knn: int = 0, knn_weight: float = 0.0, knn_xy: float = 1.0,
           knn_sigma: Optional[float] = None, features: Optional[np.ndarray] = None,
           sigma_features: Optional[float] = None, prior: Optional[np.ndarray] = None) -> np.ndarray:
    from scipy.sparse import coo_matrix, diags  # SciPy comes with scikit-image; only hints need it
    from scipy.sparse.linalg import splu

    h, w = l.shape
    n = h * w
    # Each pixel's features, scaled so that the affinity is exp(-|f_i - f_j|^2 / 2).
    parts = [(l.astype(np.float64) / sigma)[..., None]]
    if sigma_ab:
        parts.append(ab.astype(np.float64) / sigma_ab)
    if features is not None and sigma_features:
        parts.append(features.reshape(h, w, -1).astype(np.float64) / sigma_features)
    f = np.concatenate(parts, axis=-1)

    def affinity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a - b) ** 2).sum(axis=-1) / 2)

    # Each pixel's affinity to its neighbour right, down, down-right and down-left (0 past the border); diagonal
    # neighbours are farther away.
    right, down, diag, anti = (np.zeros((h, w)) for _ in range(4))
    right[:, :-1] = affinity(f[:, 1:], f[:, :-1])
    down[:-1] = affinity(f[1:], f[:-1])
    diag[:-1, :-1] = affinity(f[1:, 1:], f[:-1, :-1]) / np.sqrt(2)
    anti[:-1, 1:] = affinity(f[1:, :-1], f[:-1, 1:]) / np.sqrt(2)
    # In raster order these are four bands of the symmetric affinity matrix, at offsets 1, w, w + 1 and w - 1.
    bands = {1: right.ravel()[: n - 1], w: down.ravel()[: n - w], w + 1: diag.ravel()[: n - w - 1],
             w - 1: anti.ravel()[: n - w + 1]}
    degree = right + down + diag + anti
    degree[:, 1:] += right[:, :-1]
    degree[1:] += down[:-1]
    degree[1:, 1:] += diag[:-1, :-1]
    degree[1:, :-1] += anti[:-1, 1:]
    degree = degree.ravel()
    constraint = _HINT_WEIGHT * hint_weight.ravel().astype(np.float64)
    pull = np.ravel(pull) if np.ndim(pull) else pull  # one pull, or one per pixel
    system = diags([degree + pull + constraint, *(-v for v in bands.values()), *(-v for v in bands.values())],
                   [0, *bands, *(-k for k in bands)], shape=(n, n), format="csc")
    target = (hint_ab - ab).reshape(-1, 2).astype(np.float64) * constraint[:, None]
    if prior is not None:  # the pull draws the residual to the grid's answer instead of to zero
        target += np.reshape(pull, (-1, 1)) * prior.reshape(-1, 2)
    if knn > 0 and knn_weight > 0:
        # Solved directly too: on photos the factor stays sparse enough (about 0.25 s at 8,192 pixels, 1.8 s at
        # 22,000, on a loaded 2-vCPU VM; far more on noise, whose links reach far); conjugate gradients did not
        # converge.
        space = f.copy()
        if knn_sigma:
            space[..., 0] = l / knn_sigma
        yy, xx = np.mgrid[:h, :w]
        space = np.concatenate([space, np.dstack([yy, xx]) / knn_xy], axis=-1).reshape(n, -1)
        rows, cols, d2 = _knn_links(space, knn)
        link = knn_weight * np.exp(-d2 / 2)
        degree_knn = np.bincount(rows, link, n) + np.bincount(cols, link, n)
        linked = coo_matrix((link, (rows, cols)), shape=(n, n)).tocsr()
        linked = (linked + linked.T).tocsr()
        system = (system + diags(degree_knn) - linked).tocsc()
    # The system is symmetric positive definite: a symmetric ordering without pivoting factors it about twice as
    # fast as SuperLU's default (measured at 192 x 128 and 384 x 256).
    lu = splu(system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0, options={"SymmetricMode": True})
    return (ab + lu.solve(target).reshape(h, w, 2)).astype(np.float32)


def suggested_colours(colorizer, l: np.ndarray, point: tuple[float, float], count: int = 6,
                      render_size: Optional[int] = None, spacing: float = 15.0) -> list[tuple[str, float]]:
    """The ``count`` likeliest colours at ``point`` (x, y) of a photo whose L is ``l`` (H, W), as (``#rrggbb``,
    probability mass near that colour), likeliest first: Zhang et al. (2017)'s palette, from a classification model's distribution
    over ab bins (``colorizer`` loaded from such a file). Bins closer than ``spacing`` ab units to a likelier
    chosen one are skipped, so the palette offers different colours, each shown at the point's own L.
    """
    import torch

    if getattr(colorizer.model, "output", None) != "classification":
        raise ValueError("suggested colours need a classification model (weights/classification.safetensors)")
    h, w = l.shape
    x, y = float(point[0]), float(point[1])
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"point ({x:g}, {y:g}) lies outside the {w}x{h} photo")
    l_small = colorizer.l_small(l, render_size)
    sy, sx = int(y * l_small.shape[0] / h), int(x * l_small.shape[1] / w)
    with torch.inference_mode():
        logits = colorizer.model(torch.from_numpy(l_small)[None, None].to(colorizer.device), raw=True)
        # Sharpened by the model's own annealing temperature, as its colours are read (the raw distribution
        # of the shipped model is nearly flat).
        probs = torch.softmax(logits[0, :, sy, sx].float() / colorizer.model.temperature, dim=0).double().cpu().numpy()
    bins = colorizer.model.ab_bins.float().cpu().numpy()
    # A bin's mass with its neighbours' (Gaussian, sigma spacing / 2): the distribution is spread over many
    # neighbouring bins, so one bin's probability says little.
    distance2 = ((bins[:, None] - bins[None]) ** 2).sum(-1)
    probs = np.exp(-distance2 / (2 * (spacing / 2) ** 2)) @ probs
    chosen: list[int] = []
    for index in np.argsort(-probs):
        if all(np.hypot(*(bins[index] - bins[c])) >= spacing for c in chosen):
            chosen.append(int(index))
            if len(chosen) == count:
                break
    lab = np.array([[(l[int(y), int(x)], *bins[c]) for c in chosen]], np.float32)
    rgb = lab_to_display(lab)[0]
    return [("#%02x%02x%02x" % tuple(int(v) for v in colour), float(probs[c])) for colour, c in zip(rgb, chosen)]


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


# The leak side of the hint protocol (``evaluate --hints``): one dot of a saturated colour at a random point, and
# how much of the photo's regions of other colours it changes.
PROBE_LIGHTNESS, PROBE_CHROMA = 55.0, 60.0
LEAK_OTHER_AB = 20.0  # a pixel whose true ab is this far from the truth under the dot belongs to another region
LEAK_CHANGE_AB = 5.0  # ... and counts as leaked into when the dot moves its ab this far


def leak_probe(truth: np.ndarray, seed: int) -> tuple[Image.Image, np.ndarray]:
    """One hint a user could paint on one object: a dot (radius short side / 64, at least 1 px) of Lab
    (55, chroma 60, a random hue) at a random point (numpy's generator seeded with ``seed``), and the pixels
    (H, W bool) whose true colour differs from the truth under the dot by more than ``LEAK_OTHER_AB``: regions
    of other colours, which the dot should leave alone.
    """
    h, w = truth.shape[:2]
    rng = np.random.default_rng([seed, 0x1EA4])  # not simulated_hints' stream: the dot is not its first hint
    radius = max(1, round(min(h, w) / 64))
    x, y, hue = int(rng.integers(0, w)), int(rng.integers(0, h)), float(rng.uniform(0, 2 * np.pi))
    lab = np.array([[[PROBE_LIGHTNESS, PROBE_CHROMA * np.cos(hue), PROBE_CHROMA * np.sin(hue)]]], np.float32)
    colour = tuple(int(c) for c in lab_to_display(lab)[0, 0])
    yy, xx = np.ogrid[:h, :w]
    dot = (yy - y) ** 2 + (xx - x) ** 2 <= radius * radius
    ab = rgb_to_lab(truth[..., :3].astype(np.float32) / 255.0)[..., 1:]
    other = np.linalg.norm(ab - ab[dot].mean(axis=0), axis=-1) > LEAK_OTHER_AB
    return hint_image([(x, y, colour, radius)], (w, h)), other


def leak(before: np.ndarray, after: np.ndarray, other: np.ndarray) -> Optional[float]:
    """The share of the ``other`` pixels whose ab moved more than ``LEAK_CHANGE_AB`` from ``before`` (the result
    without the dot) to ``after`` (with it), both (H, W, 3) uint8 RGB; None when the photo has no other region."""
    if not other.any():
        return None
    moved = np.linalg.norm(rgb_to_lab(after.astype(np.float32) / 255.0)[..., 1:]
                           - rgb_to_lab(before.astype(np.float32) / 255.0)[..., 1:], axis=-1)
    return float((moved[other] > LEAK_CHANGE_AB).mean())


def training_hints(ab, generator=None, p: float = 1 / 8, max_side: int = 9, max_points: int = 32):
    """Hints simulated for a training batch from its own ab (B, 2, S, S): (B, 3, S, S), ab and mask, the
    ``hints`` input of a hint model.

    Zhang et al. (2017)'s protocol: per photo a geometric number of points (success ``p``: 1/8 of the photos get
    none, so the network stays an automatic colorizer; mean about 7, at most ``max_points``), each a P x P square
    with P uniform in 1..``max_side``, centred around the middle (normal, sigma a quarter of the side) or anywhere
    (half each), filled with the photo's mean ab over that square; a later square covers an earlier one.
    Batched, with one draw of random numbers: on a GPU a loop per photo spent more time syncing than training.
    """
    import math

    import torch
    import torch.nn.functional as F

    b, _, h, w = ab.shape
    k = max_points
    dev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(b, 1 + 5 * k, generator=generator, device=dev, dtype=torch.float64).to(ab.device)
    # failures before the first success, drawn by inversion
    count = torch.floor(torch.log(u[:, 0].clamp_min(1e-300)) / math.log1p(-p)).clamp(max=k)
    side_u, centred, u1, u2, _ = u[:, 1:].view(b, 5, k).unbind(1)
    side = (1 + (side_u * max_side).long()).clamp(max=min(h, w))
    radius = torch.sqrt(-2 * torch.log(u1.clamp_min(1e-12)))  # Box-Muller
    cy = torch.where(centred < 0.5, h / 2 + radius * torch.cos(2 * math.pi * u2) * h / 4, u1 * h)
    cx = torch.where(centred < 0.5, w / 2 + radius * torch.sin(2 * math.pi * u2) * w / 4, u2 * w)
    top = torch.minimum((cy.long() - side // 2).clamp_min(0), h - side)
    left = torch.minimum((cx.long() - side // 2).clamp_min(0), w - side)
    active = torch.arange(k, device=ab.device) < count[:, None]  # (B, K)
    # each square's mean ab: the box filter of its size, read at its top-left corner
    mean = torch.zeros(b, k, 2, dtype=ab.dtype, device=ab.device)
    rows = torch.arange(b, device=ab.device)[:, None].expand(b, k)
    for s in range(1, max_side + 1):
        if s > min(h, w):
            break
        pooled = F.avg_pool2d(ab, s, stride=1) if s > 1 else ab  # (B, 2, h - s + 1, w - s + 1)
        at = pooled.permute(0, 2, 3, 1)[rows, top.clamp(max=h - s), left.clamp(max=w - s)]  # (B, K, 2)
        mean = torch.where((side == s)[..., None], at, mean)
    # paint: each pixel takes the last active square that covers it (1-based index; 0 = none)
    ys, xs = torch.arange(h, device=ab.device), torch.arange(w, device=ab.device)
    in_rows = (ys >= top[..., None]) & (ys < (top + side)[..., None]) & active[..., None]  # (B, K, h)
    in_cols = (xs >= left[..., None]) & (xs < (left + side)[..., None])  # (B, K, w)
    order = torch.arange(1, k + 1, device=ab.device, dtype=torch.uint8 if k < 256 else torch.int32)
    last = ((in_rows[..., :, None] & in_cols[..., None, :]) * order[None, :, None, None]).amax(dim=1).long()
    out = torch.zeros(b, 3, h, w, dtype=ab.dtype, device=ab.device)
    picked = torch.gather(mean, 1, (last - 1).clamp_min(0).flatten(1)[..., None].expand(-1, -1, 2))  # (B, h*w, 2)
    hinted = last > 0
    out[:, :2] = torch.where(hinted[:, None], picked.permute(0, 2, 1).view(b, 2, h, w), out[:, :2])
    out[:, 2] = hinted.to(ab.dtype)
    return out
