"""Colour as classification (Zhang, Isola and Efros 2016, "Colorful Image Colorization").

The ab plane is cut into square bins of width 10; the network predicts a distribution over the
bins that real colours fall in. Training targets are soft (the 5 nearest bins, Gaussian sigma 5),
rare colours are weighted up (class rebalancing) and a prediction is read back as the annealed
mean of the distribution, which keeps the vividness a plain mean would average away.

Zhang et al. keep 313 bins for their gamut computation. With this project's sRGB -> Lab
(scikit-image's constants, :mod:`colorization.color`), exactly 261 bins of width 10 hold the ab of
some 8-bit sRGB colour; the other bins would hold colours no sRGB photo can have, so they are not
kept. The bins are computed, never hard-coded, and travel inside each weights file as a tensor.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Union

import torch
import torch.nn.functional as F

from .color import rgb_to_lab

__all__ = [
    "BIN_WIDTH",
    "ab_bins",
    "nearest_bin",
    "soft_encode",
    "empirical_prior",
    "smooth_prior",
    "compute_prior",
    "save_prior",
    "load_prior",
    "rebalance_weights",
    "annealed_mean",
    "classification_loss",
]

BIN_WIDTH = 10.0


@lru_cache(maxsize=4)
def _bins(width: float) -> torch.Tensor:
    # Every 8-bit colour on the surface of the RGB cube suffices: the cube's ab projection is the
    # projection of its surface (a vertical line through the solid meets its boundary). All 16.7 M
    # colours give the same 261 bins; the surface's 393 k take 0.2 s.
    v = torch.arange(256, dtype=torch.float64) / 255
    g, b = torch.meshgrid(v, v, indexing="ij")
    faces = []
    for channel in range(3):
        for value in (0.0, 1.0):
            planes = [g, b]
            planes.insert(channel, torch.full_like(g, value))
            faces.append(torch.stack(planes).reshape(3, -1))
    ab = rgb_to_lab(torch.cat(faces, dim=1)[:, :, None])[1:, :, 0]
    cells = torch.round(ab / width).T.unique(dim=0)  # sorted by a, then b
    return (cells * width).float()


def ab_bins(width: float = BIN_WIDTH) -> torch.Tensor:
    """(Q, 2) centres of the ab bins (multiples of ``width``) that hold some 8-bit sRGB colour."""
    return _bins(float(width)).clone()


def _distances2(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """ab (B, 2, H, W) -> squared distances (B, H, W, Q) to every bin centre."""
    flat = ab.permute(0, 2, 3, 1).float()
    bins = bins.to(flat)
    # Per coordinate, so no (B, H, W, Q, 2) tensor is ever made: this runs on every training pixel.
    return (flat[..., :1] - bins[:, 0]) ** 2 + (flat[..., 1:] - bins[:, 1]) ** 2


def nearest_bin(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """ab (B, 2, H, W) in Lab units -> (B, H, W) index of the nearest bin."""
    return _distances2(ab, bins).argmin(-1)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor, neighbours: int = 5, sigma: float = 5.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft targets: the ``neighbours`` nearest bins with Gaussian weights that sum to 1.

    ab (B, 2, H, W) -> (indices (B, H, W, k), weights (B, H, W, k)); sparse, because a dense
    (B, Q, H, W) target would be 99 % zeros.
    """
    d2, idx = _distances2(ab, bins).topk(neighbours, dim=-1, largest=False)
    weights = torch.softmax(-d2 / (2 * sigma**2), dim=-1)  # exp(-d^2 / 2 sigma^2), normalised
    return idx, weights


def empirical_prior(images: torch.Tensor, bins: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """How often each bin occurs over all pixels of uint8 photos (N, 3, H, W); sums to 1."""
    counts = torch.zeros(len(bins), dtype=torch.float64, device=images.device)
    for start in range(0, images.shape[0], batch_size):
        rgb = images[start : start + batch_size].float() / 255.0
        idx = nearest_bin(rgb_to_lab(rgb)[:, 1:], bins.to(images.device))
        counts += torch.bincount(idx.flatten(), minlength=len(bins)).double()
    return (counts / counts.sum()).float().cpu()


def smooth_prior(prior: torch.Tensor, bins: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """The prior blurred by a Gaussian of ``sigma`` (Lab units) over the ab plane; sums to 1."""
    bins = bins.double().cpu()
    kernel = torch.exp(-((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))
    smoothed = kernel @ prior.double().cpu()
    return (smoothed / smoothed.sum()).float()


def compute_prior(images: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """The smoothed empirical ab distribution of uint8 photos (N, 3, H, W) over ``bins``."""
    return smooth_prior(empirical_prior(images, bins), bins)


def save_prior(path: Union[str, os.PathLike], bins: torch.Tensor, prior: torch.Tensor, info: dict[str, str]) -> None:
    """A prior file: the bins it was computed over and the smoothed prior (safetensors; ``info`` as metadata)."""
    from safetensors.torch import save_file

    from .files import atomic_write

    atomic_write(path, lambda tmp: save_file({"ab_bins": bins.float().cpu(), "prior": prior.float().cpu()}, tmp,
                                             metadata=info))


def load_prior(path: Union[str, os.PathLike], bins: torch.Tensor) -> torch.Tensor:
    """The prior in a file written by :func:`save_prior`; its bins must be ``bins``."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if tensors.get("ab_bins") is None or not torch.equal(tensors["ab_bins"].float(), bins.float().cpu()):
        raise ValueError(f"{path}: its ab bins differ from this model's; compute the prior again")
    return tensors["prior"].float()


def rebalance_weights(smoothed_prior: torch.Tensor, mix: float = 0.5) -> torch.Tensor:
    """Per-bin loss weights w ~ 1 / ((1 - mix) * p + mix / Q), scaled so that E_p[w] = 1.

    ``mix`` = 0.5 is Zhang et al.'s lambda: half way between the data's distribution and uniform,
    so rare (saturated) colours count more without letting a handful of pixels dominate.
    """
    p = smoothed_prior.double()
    w = 1.0 / ((1 - mix) * p + mix / len(p))
    return (w / (p * w).sum()).float()


def annealed_mean(logits: torch.Tensor, bins: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """(B, Q, H, W) logits -> (B, 2, H, W) ab: the mean of softmax(logits / T).

    T = 1 is the plain mean (desaturated where the distribution is multimodal), T -> 0 the mode
    (vivid but patchy); Zhang et al.'s 0.38 sits between.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    probs = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", probs, bins.to(probs))


def classification_loss(logits: torch.Tensor, ab: torch.Tensor, bins: torch.Tensor,
                        weights: torch.Tensor | None = None) -> torch.Tensor:
    """Rebalanced cross-entropy with soft targets, averaged over pixels.

    logits (B, Q, H, W); ab (B, 2, H, W) true colours in Lab units; weights (Q,) from
    :func:`rebalance_weights`, applied per pixel by the pixel's nearest bin (or None for plain CE).
    """
    idx, target = soft_encode(ab, bins)  # (B, H, W, k)
    log_probs = F.log_softmax(logits.float(), dim=1).permute(0, 2, 3, 1)  # (B, H, W, Q)
    per_pixel = -(target * log_probs.gather(-1, idx)).sum(-1)
    if weights is not None:
        per_pixel = per_pixel * weights.to(per_pixel)[idx[..., 0]]  # idx[..., 0] is the nearest bin
    return per_pixel.mean()
