"""Zhang et al.'s classification pieces, checked on values that can be worked out by hand."""

import math

import pytest
import torch

from colorization.color import rgb_to_lab
from colorization.data import decode_photos
from colorization.quantize import (ab_bins, annealed_mean, classification_loss, empirical_prior, nearest_bin,
                                   rebalance_weights, smooth_prior, soft_encode)


def _ab(*points):
    """(1, 2, 1, N) ab image from (a, b) points."""
    return torch.tensor(points, dtype=torch.float32).T[None, :, None, :]


def test_bins_are_the_width_10_cells_that_hold_srgb_colours():
    bins = ab_bins()
    assert bins.shape == (261, 2)
    assert torch.equal(bins, (bins / 10).round() * 10)  # centres on multiples of 10
    assert bins[:, 0].min() == -90 and bins[:, 0].max() == 100 and bins[:, 1].min() == -110 and bins[:, 1].max() == 90
    as_set = set(map(tuple, bins.tolist()))
    assert (0.0, 0.0) in as_set and (80.0, 70.0) in as_set  # gray; saturated red (sRGB red is ab 80, 67)
    assert (100.0, 100.0) not in as_set and (-90.0, -100.0) not in as_set  # no sRGB colour is there
    # every 8-bit colour falls in a kept bin: its nearest centre is its own cell's
    rgb = torch.randint(0, 256, (3, 200, 200), generator=torch.Generator().manual_seed(0)).float() / 255
    ab = rgb_to_lab(rgb)[1:][None]
    nearest = bins[nearest_bin(ab, bins)].permute(0, 3, 1, 2)
    assert (nearest - ab).abs().max() <= 5.0 + 1e-4


def test_soft_encoding_of_a_bin_centre_and_of_a_midpoint():
    bins = ab_bins()
    idx, w = soft_encode(_ab((0.0, 0.0), (5.0, 0.0)), bins)
    assert idx.shape == w.shape == (1, 1, 2, 5)
    assert torch.allclose(w.sum(-1), torch.ones(1, 1, 2))
    # at a centre: itself, then its 4 neighbours at distance 10, weight exp(-100 / 50) = e^-2 each
    centre = bins[idx[0, 0, 0]].tolist()
    assert centre[0] == [0.0, 0.0]
    assert sorted(map(tuple, centre[1:])) == [(-10.0, 0.0), (0.0, -10.0), (0.0, 10.0), (10.0, 0.0)]
    z = 1 + 4 * math.exp(-2)
    assert torch.allclose(w[0, 0, 0], torch.tensor([1 / z] + [math.exp(-2) / z] * 4), atol=1e-6)
    # half way between (0, 0) and (10, 0): those two share the most weight, equally
    assert torch.isclose(w[0, 0, 1, 0], w[0, 0, 1, 1]) and w[0, 0, 1, 0] > w[0, 0, 1, 2]
    assert {tuple(bins[i].tolist()) for i in idx[0, 0, 1, :2]} == {(0.0, 0.0), (10.0, 0.0)}


@pytest.fixture(scope="module")
def prior_of_real_photos(train_photos):
    photos = decode_photos(train_photos, size=64, workers=0, progress=False)
    bins = ab_bins()
    return bins, smooth_prior(empirical_prior(photos.images, bins), bins)


def test_rebalancing_weights_have_expectation_one_on_the_training_distribution(prior_of_real_photos):
    bins, prior = prior_of_real_photos
    assert torch.isclose(prior.sum(), torch.tensor(1.0), atol=1e-5) and (prior >= 0).all()
    w = rebalance_weights(prior, 0.5)
    assert torch.isclose((prior.double() * w.double()).sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-5)
    gray, vivid = nearest_bin(_ab((0.0, 0.0), (60.0, 60.0)), bins)[0, 0].tolist()
    assert prior[gray] > prior[vivid] and w[gray] < w[vivid]  # common colours count less, rare ones more
    assert torch.allclose(rebalance_weights(prior, 1.0), torch.ones(len(prior)))  # lambda 1: no rebalancing


def test_annealed_mean_at_t1_is_the_mean_and_approaches_the_mode_as_t_falls():
    bins = ab_bins()
    logits = torch.randn(2, len(bins), 3, 4, generator=torch.Generator().manual_seed(0)) * 3
    mean = torch.einsum("bqhw,qc->bchw", torch.softmax(logits, 1), bins)
    assert torch.allclose(annealed_mean(logits, bins, 1.0), mean, atol=1e-4)
    top = logits.argmax(1, keepdim=True)
    logits.scatter_add_(1, top, torch.ones_like(top, dtype=logits.dtype))  # a mode at least 1 logit clear
    mode = bins[top[:, 0]].permute(0, 3, 1, 2)
    assert torch.allclose(annealed_mean(logits, bins, 0.02), mode, atol=1e-3)
    with pytest.raises(ValueError):
        annealed_mean(logits, bins, 0.0)


def test_the_loss_prefers_the_soft_target_to_a_uniform_guess():
    bins = ab_bins()
    ab = _ab((20.0, -30.0), (3.0, 4.0), (-40.0, 50.0))
    idx, target = soft_encode(ab, bins)
    good = torch.full((1, len(bins), 1, 3), -20.0)
    good.permute(0, 2, 3, 1).scatter_(-1, idx, target.log())  # logits whose softmax is the soft target
    uniform = torch.zeros_like(good)
    entropy = -(target * target.log()).sum(-1).mean()  # the least a cross-entropy can be
    assert torch.isclose(classification_loss(good, ab, bins), entropy, atol=1e-4)
    assert torch.isclose(classification_loss(uniform, ab, bins), torch.tensor(math.log(len(bins))))
    assert entropy < 0.3 * math.log(len(bins))
