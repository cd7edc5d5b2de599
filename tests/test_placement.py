"""The "where to click" overlay (colorization.placement): maps from L alone, and spaced points inside the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from colorization.hints import simulated_hints
from colorization.pipeline import Colorizer, load_colorizer
from colorization.placement import Overlay, default_spacing, overlay, pick_points, simulated_hints_at
from colorization.quantize import ab_bins

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


class DarkIsUnsure(nn.Module):
    """A stand-in model: unsure (a flat distribution over ab bins, or gray) where L < 50, sure elsewhere."""

    def __init__(self, output: str = "classification"):
        super().__init__()
        self.output, self.temperature = output, 1.0
        self.register_buffer("ab_bins", ab_bins())

    def forward(self, l: torch.Tensor, raw: bool = False, hints=None) -> torch.Tensor:
        dark = (l < 50).float()  # (B, 1, H, W)
        if self.output == "regression":
            return 40.0 * (1 - dark).expand(-1, 2, -1, -1)  # gray where dark, chroma 57 elsewhere
        logits = torch.zeros(l.shape[0], len(self.ab_bins), *l.shape[-2:])
        logits[:, 0] = 30.0 * (1 - dark[:, 0])  # one sure bin where light, flat where dark
        return logits


def photo_l(squares: list[tuple[int, int, int]], shape=(128, 160)) -> np.ndarray:
    """L of a light photo (80) with dark squares (top, left, side) of L 20."""
    l = np.full(shape, 80.0, np.float32)
    for top, left, side in squares:
        l[top : top + side, left : left + side] = 20.0
    return l


def inside(point, square) -> bool:
    (x, y), (top, left, side) = point, square
    return top <= y < top + side and left <= x < left + side


@pytest.mark.parametrize("method", ["entropy", "region", "low_chroma"])
def test_points_land_where_the_model_is_unsure(method):
    square = (60, 90, 48)
    colorizer = Colorizer(DarkIsUnsure("regression" if method == "low_chroma" else "classification"), 128)
    points = pick_points(overlay(colorizer, photo_l([square]), method), 3)
    # "region" puts one point in each region first: its second goes elsewhere (the next test)
    wanted = points[:1] if method == "region" else points
    assert len(points) == 3 and all(inside(p, square) for p in wanted), points


def test_region_prefers_the_big_unsure_region_then_another_one():
    big, small = (10, 10, 60), (80, 110, 32)
    over = overlay(Colorizer(DarkIsUnsure(), 128), photo_l([big, small]), "region")
    first, second = pick_points(over, 2, spacing=4)  # a small spacing: only the regions keep them apart
    assert inside(first, big) and inside(second, small), (first, second)


@pytest.mark.parametrize("shape", [(128, 160), (97, 31), (5, 7), (300, 200)])
def test_points_are_inside_the_photo_spaced_and_deterministic(shape):
    score = np.random.default_rng(0).random(shape).astype(np.float32)
    over = Overlay(score, shape)
    points = pick_points(over, 10)
    assert points == pick_points(over, 10)
    assert len(points) == 10 and len(set(points)) == 10
    assert all(0 <= x < shape[1] and 0 <= y < shape[0] for x, y in points)
    if min(shape) >= 97:  # ten points fit at the default spacing: it is kept
        xy = np.array(points, float)
        distances = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))[np.triu_indices(10, 1)]
        assert distances.min() >= default_spacing(shape)


def test_points_on_a_smaller_map_are_in_photo_pixels():
    over = Overlay(np.zeros((40, 50), np.float32), (400, 500))
    over.score[30, 45] = 1  # the best pixel is near the bottom-right corner
    (x, y), *rest = pick_points(over, 4)
    assert (x, y) == (455, 305) and all(0 <= px < 500 and 0 <= py < 400 for px, py in rest)


def test_more_points_than_fit_halve_the_spacing():
    points = pick_points(Overlay(np.zeros((16, 16), np.float32), (16, 16)), 30, spacing=8)
    assert len(set(points)) == 30


def test_the_overlay_reads_gray_only():
    colorizer = Colorizer(DarkIsUnsure(), 128)
    with pytest.raises(ValueError, match="lightness only"):
        overlay(colorizer, np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="unknown overlay"):
        overlay(colorizer, np.zeros((32, 32), np.float32), "oracle")
    with pytest.raises(ValueError, match="classification model"):
        overlay(Colorizer(DarkIsUnsure("regression"), 128), np.zeros((32, 32), np.float32), "entropy")


def test_placed_hints_are_simulated_hints_at_chosen_points():
    truth = np.random.default_rng(1).integers(0, 256, (97, 131, 3)).astype(np.uint8)
    side, rng = 3, np.random.default_rng(7)  # simulated_hints' own draws, with its seed
    corners = [(int(rng.integers(0, 97 - side + 1)), int(rng.integers(0, 131 - side + 1))) for _ in range(6)]
    points = [(left + side // 2, top + side // 2) for top, left in corners]
    assert np.array_equal(np.asarray(simulated_hints(truth, 6, 7)), np.asarray(simulated_hints_at(truth, points)))


@pytest.mark.skipif(not (WEIGHTS / "classification.safetensors").exists(), reason="shipped weights missing")
@pytest.mark.parametrize("method", ["entropy", "region"])
def test_shipped_classification_model(method):
    l = np.tile(np.linspace(10, 90, 200, dtype=np.float32), (150, 1))
    over = overlay(load_colorizer(WEIGHTS / "classification.safetensors", device="cpu"), l, method)
    assert over.score.shape[0] == 160 and np.isfinite(over.score).all()
    assert over.score.min() == 0 and over.score.max() == 1 and over.at_photo_size().shape == l.shape
