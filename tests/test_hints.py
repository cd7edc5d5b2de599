"""The hint propagation engine: wanted colours spread along the photo's lightness, the rest left alone."""

from __future__ import annotations

import numpy as np
import pytest

from colorization.color import rgb_to_lab
from colorization.hints import hint_image, hints_at, propagate


def _two_regions(h: int = 40, w: int = 60) -> np.ndarray:
    l = np.full((h, w), 30.0, np.float32)
    l[:, w // 2 :] = 70.0  # a sharp edge down the middle
    return l


def test_a_hint_colours_its_region_and_stops_at_the_edge():
    l = _two_regions()
    ab = np.zeros(l.shape + (2,), np.float32)
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[18:21, 8:11] = (40.0, 30.0)
    weight[18:21, 8:11] = 1.0
    out = propagate(l, ab, hint_ab, weight)
    assert np.allclose(out[19, 9], (40.0, 30.0), atol=0.5)  # the hinted pixel keeps its colour
    left, right = out[:, :30], out[:, 30:]
    assert np.abs(left - (40.0, 30.0)).max(axis=2).mean() < 8  # spread over its own region ...
    assert np.abs(right).max() < 2  # ... and not across an edge of 40 L units


def test_no_hints_change_nothing_and_far_regions_keep_the_network_colours():
    l = _two_regions()
    rng = np.random.default_rng(0)
    ab = rng.normal(0, 10, l.shape + (2,)).astype(np.float32)
    assert propagate(l, ab, np.zeros_like(ab), np.zeros(l.shape, np.float32)) is ab
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[5, 5], weight[5, 5] = ab[5, 5] + 20, 1.0
    out = propagate(l, ab, hint_ab, weight)
    assert np.allclose(out[:, 40:], ab[:, 40:], atol=0.5)  # the residual, not the colour, is spread


def test_hint_image_points_become_render_resolution_hints():
    hints = hint_image([(100, 50, "#ff0000", 6), (10, 90, (0, 0, 255), 3)], (200, 100))
    assert hints.mode == "RGBA" and hints.size == (200, 100)
    hint_ab, weight = hints_at(hints, (50, 100))  # half resolution
    red_ab = rgb_to_lab(np.array([[1.0, 0.0, 0.0]], np.float32))[0, 1:]
    assert np.allclose(hint_ab[25, 50], red_ab, atol=1.0) and weight[25, 50] == 1.0
    assert weight[0, 0] == 0.0 and (weight > 0).sum() < 0.05 * weight.size
    with pytest.raises(ValueError, match="RGBA"):
        hints_at(np.zeros((10, 10, 3), np.uint8), (5, 5))


def test_the_pipeline_takes_hints_and_is_unchanged_without(colorizer, eval_photos):
    from PIL import Image

    from colorization.hints import hint_image

    photo = Image.open(eval_photos[0]).convert("RGB")
    plain = np.asarray(colorizer(photo, render_size=64)).astype(int)
    assert np.array_equal(plain, np.asarray(colorizer(photo, render_size=64, hints=None)))
    w, h = photo.size
    hints = hint_image([(w // 2, h // 2, "#00c000", 8)], photo.size)
    hinted = np.asarray(colorizer(photo, render_size=64, hints=hints)).astype(int)
    centre = hinted[h // 2 - 3 : h // 2 + 4, w // 2 - 3 : w // 2 + 4]
    green = rgb_to_lab(centre.astype(np.float32) / 255)[..., 1].mean()
    assert green < rgb_to_lab(plain[h // 2 - 3 : h // 2 + 4, w // 2 - 3 : w // 2 + 4].astype(np.float32) / 255)[..., 1].mean() - 10
    # the photo's own L is kept wherever the colour comes from
    l_plain = rgb_to_lab(plain.astype(np.float32) / 255)[..., 0]
    assert np.abs(rgb_to_lab(hinted.astype(np.float32) / 255)[..., 0] - l_plain).mean() < 1.0
    with pytest.raises(ValueError, match="photo's size"):
        colorizer(photo, hints=hint_image([], (w + 1, h)))


def test_zero_initialised_hint_inputs_reproduce_the_automatic_output(weights_file):
    import torch

    from colorization.hints import training_hints
    from colorization.train import _with_hint_inputs
    from colorization.weights import load_weights

    model, _ = load_weights(weights_file)
    hinted = _with_hint_inputs(model).eval()
    assert hinted.hints and not getattr(model, "hints", False)
    l = torch.rand(2, 1, 48, 80) * 100
    hints = training_hints(torch.randn(2, 2, 48, 80) * 30, torch.Generator().manual_seed(1))
    assert hints[:, 2].sum() > 0
    with torch.no_grad():
        assert torch.equal(model(l), hinted(l, hints=hints))
        # once the hint inputs learn something, the hints do change the output
        for conv in hinted.hint_in:
            conv.weight.data.normal_(0, 0.1)
        assert not torch.equal(model(l), hinted(l, hints=hints))


def test_training_hints_are_squares_of_the_crops_mean_colour_and_some_crops_get_none():
    import torch

    from colorization.hints import training_hints

    ab = torch.randn(400, 2, 32, 32) * 20
    hints = training_hints(ab, torch.Generator().manual_seed(0))
    again = training_hints(ab, torch.Generator().manual_seed(0))
    assert torch.equal(hints, again)  # a seed fixes them
    counts = (hints[:, 2].flatten(1) > 0).any(dim=1)
    assert 0.05 < 1 - counts.float().mean() < 0.25  # p = 1/8 of the crops have none
    # each hinted pixel's value is the mean ab of a square around it (check one isolated hint)
    one = training_hints(ab[:1].expand(50, -1, -1, -1).clone(), torch.Generator().manual_seed(3))
    for i in range(50):
        ys, xs = torch.nonzero(one[i, 2], as_tuple=True)
        if len(ys) and (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1) == len(ys):  # one square
            square = ab[0, :, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
            assert torch.allclose(one[i, :2, ys[0], xs[0]], square.mean(dim=(1, 2)), atol=1e-4)
            break
    else:
        pytest.fail("no crop with a single square hint")


def test_a_hint_model_trains_validates_with_hints_and_says_so(tmp_path, weights_file, train_photos, eval_photos):
    import json

    from PIL import Image

    from colorization import load_colorizer
    from colorization.train import TrainConfig, train
    from colorization.weights import load_weights

    config = TrainConfig(data=[str(p) for p in train_photos], out_dir=str(tmp_path / "run"), init_weights=str(weights_file),
                         hints=True, frozen_norm=True, steps=4, batch_size=4, image_size=64, crop_size=64,
                         val_count=4, val_every=4, checkpoint_every=4, log_every=1, workers=0)
    best = train(config, progress=False)
    model, meta = load_weights(best)
    assert meta["hints"] is True and meta["model"]["args"]["hints"] is True and model.hints
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("val_hints", {}).get("hints") == 10 for r in records)
    assert meta["metrics"]["validation"]["with_hints"]["hints"] == 10
    colorizer = load_colorizer(best, device="cpu")
    assert colorizer.takes_hints
    photo = Image.open(eval_photos[0]).convert("RGB")
    w, h = photo.size
    hinted = colorizer(photo, render_size=64, hints=hint_image([(w // 2, h // 2, "#ff0000", 8)], photo.size))
    assert hinted.size == photo.size


def test_only_a_model_with_hint_inputs_can_learn_hints(tmp_path, train_photos):
    from colorization.models import build_model
    from colorization.train import _with_hint_inputs

    with pytest.raises(ValueError, match="no hint inputs"):
        _with_hint_inputs(build_model("unet", base_channels=8, depth=2))
    with pytest.raises(ValueError, match="true or false"):
        build_model("effnet-unet", hints="yes")


def test_a_large_render_is_propagated_on_a_bounded_copy_with_nearly_the_direct_result():
    l = _two_regions(300, 400)  # 120,000 pixels, over MAX_SOLVE_PIXELS
    rng = np.random.default_rng(0)
    ab = rng.normal(0, 5, l.shape + (2,)).astype(np.float32)
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[140:161, 90:111] = (40.0, 30.0)
    weight[140:161, 90:111] = 1.0
    bounded = propagate(l, ab, hint_ab, weight)
    direct = propagate(l, ab, hint_ab, weight, max_pixels=l.size)
    assert bounded.shape == ab.shape
    assert np.allclose(bounded[150, 100], (40.0, 30.0), atol=6)  # up to the noise in ab, which the copy averages
    assert np.abs(bounded - direct).mean() < 0.5  # ab units
    assert np.abs(bounded[:, 210:] - ab[:, 210:]).max() < 2  # still stops at the edge


def _two_colours(h: int = 48, w: int = 64) -> np.ndarray:
    """A photo of two flat regions of clearly different colours: reddish left, bluish right."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (200, 60, 50)
    rgb[:, w // 2 :] = (40, 80, 190)
    return rgb


def test_the_leak_probe_is_one_dot_and_its_other_region_is_the_other_colour():
    from colorization.hints import leak_probe

    truth = _two_colours()
    dot, other = leak_probe(truth, seed=3)
    alpha = np.asarray(dot)[..., 3] > 0
    ys, xs = np.nonzero(alpha)
    assert 1 <= alpha.sum() <= 9  # radius max(1, 48 / 64) = 1: a dot, not a stroke
    expected = np.zeros(truth.shape[:2], bool)
    if xs.mean() < 32:  # the other region is exactly the half the dot is not on
        expected[:, 32:] = True
    else:
        expected[:, :32] = True
    assert np.array_equal(other, expected)
    again, _ = leak_probe(truth, seed=3)
    assert np.array_equal(np.asarray(dot), np.asarray(again))  # seeded
    lab = rgb_to_lab(np.asarray(dot)[ys[0], xs[0], :3][None].astype(np.float32) / 255)[0]
    assert abs(np.hypot(lab[1], lab[2]) - 60) < 8  # a saturated colour, as a user would paint


def test_leak_counts_the_other_regions_pixels_that_moved():
    from colorization.hints import leak

    before = _two_colours()
    other = np.zeros(before.shape[:2], bool)
    other[:, 32:] = True
    assert leak(before, before, other) == 0.0
    after = before.copy()
    after[:, 32:48] = (40, 160, 60)  # half of the other region turns green
    after[:, :32] = (0, 200, 0)  # the dot's own region may change freely
    assert leak(before, after, other) == pytest.approx(0.5)
    assert leak(before, after, np.zeros_like(other)) is None  # a one-colour photo has nothing to leak into


def test_evaluate_with_hints_reports_both_sides(colorizer, eval_photos):
    from colorization.evaluation import evaluate, format_table

    report = evaluate(colorizer, eval_photos[:2], render_size=64, hints=5, seed=1, progress=False)
    assert report["leak_photos"] >= 1 and 0.0 <= report["leak"] <= 1.0
    gain = report["model"]["psnr"] - report["automatic"]["psnr"]
    assert report["hint_gain"] == pytest.approx(gain)
    automatic = evaluate(colorizer, eval_photos[:2], render_size=64, progress=False)
    assert report["automatic"]["psnr"] == pytest.approx(automatic["model"]["psnr"], abs=1e-6)
    assert "leak" not in automatic  # no hints, no leak to report
    assert "leak" in format_table(report)


def test_the_networks_colour_edges_stop_a_hint_where_l_has_none():
    l = np.full((40, 60), 50.0, np.float32)  # one lightness: L alone has no edge to stop at
    ab = np.zeros(l.shape + (2,), np.float32)
    ab[:, 30:] = (0.0, 30.0)  # but the network saw two objects
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[18:21, 8:11] = (40.0, 30.0)
    weight[18:21, 8:11] = 1.0
    unguided = propagate(l, ab, hint_ab, weight, pull=1e-3, sigma_ab=None, geodesic=None)
    guided = propagate(l, ab, hint_ab, weight, pull=1e-3, sigma_ab=1.0, geodesic=None)
    far = np.abs(unguided[:, 45:] - ab[:, 45:]).max(), np.abs(guided[:, 45:] - ab[:, 45:]).max()
    assert far[0] > 3 and far[1] < 0.5  # the hint crosses the colour edge only without the guide
    assert np.allclose(guided[19, 9], (40.0, 30.0), atol=0.5)
    # the bounded copy of a large render keeps the guide
    big = [np.repeat(np.repeat(a, 8, axis=0), 8, axis=1) for a in (l, ab, hint_ab, weight)]
    bounded = propagate(*big, pull=1e-3, sigma_ab=1.0, geodesic=None)
    assert np.abs(bounded[:, 380:] - big[1][:, 380:]).max() < 0.5


@pytest.mark.parametrize("name", ["coffee.jpg", "astronaut.jpg", "chelsea.jpg"])
def test_one_dot_colours_its_spot_and_leaves_the_photo(name):
    """What the issue's user did: one green dot on the coffee must not turn the cup, saucer and table green (with
    the shipped CNN and the settings before the two-sided protocol, 84-100 % of each photo moved by > 5 ab)."""
    from PIL import Image

    from colorization import load_colorizer
    from colorization.paths import examples_dir

    colorizer = load_colorizer(device="cpu")
    photo = Image.open(examples_dir() / name).convert("L")
    w, h = photo.size
    before = np.asarray(colorizer(photo)).astype(np.float32) / 255
    after = np.asarray(colorizer(photo, hints=hint_image([(w // 2, h // 2, "#20b020", 3)], photo.size)))
    moved = np.linalg.norm(rgb_to_lab(after.astype(np.float32) / 255)[..., 1:] - rgb_to_lab(before)[..., 1:], axis=-1)
    yy, xx = np.mgrid[:h, :w]
    far = (yy - h // 2) ** 2 + (xx - w // 2) ** 2 > (min(h, w) / 4) ** 2
    assert moved[h // 2 - 2 : h // 2 + 3, w // 2 - 2 : w // 2 + 3].mean() > 10  # the spot took the colour
    assert (moved > 5).mean() < 0.4 and (moved[far] > 5).mean() < 0.3  # most of the photo did not


def test_a_colour_that_reaches_the_photo_casts_it_and_an_unknown_reach_is_named():
    """Issue 24 item 3: a colour cast of the whole photo is a choice of its own ("photo"), not what a stroke does."""
    from PIL import Image

    from colorization import load_colorizer
    from colorization.paths import examples_dir

    colorizer = load_colorizer(device="cpu")
    photo = Image.open(examples_dir() / "coffee.jpg").convert("L")
    w, h = photo.size
    before = rgb_to_lab(np.asarray(colorizer(photo)).astype(np.float32) / 255)
    dot = hint_image([(w // 2, h // 2, "#f08020", 6)], photo.size)  # an orange dot: a warmer photo
    moved = {reach: np.linalg.norm(rgb_to_lab(np.asarray(colorizer(photo, hints=dot, reach=reach)).astype(
        np.float32) / 255)[..., 1:] - before[..., 1:], axis=-1) for reach in ("object", "photo")}
    assert (moved["photo"] > 5).mean() > 0.5 > (moved["object"] > 5).mean()  # the whole photo, against its spot
    with pytest.raises(ValueError, match="unknown reach 'room'; choose one of: object, photo"):
        colorizer(photo, hints=dot, reach="room")


def _foliage(h: int = 48, w: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """L of a textured object (foliage: L 20-40 at random) on the left beside a flat sky (L 75), and its mask."""
    rng = np.random.default_rng(0)
    l = np.full((h, w), 75.0, np.float32)
    leaf = np.zeros((h, w), bool)
    leaf[:, : w // 2] = True
    l[leaf] = 30 + rng.uniform(-10, 10, leaf.sum())
    return l, leaf


@pytest.mark.parametrize("links", [{"knn": 10, "knn_weight": 0.01, "knn_xy": 8.0},
                                   {"grid_xy": 12.0, "grid_l": 6.0, "grid_ab": 6.0, "grid_pull": 0.2}])
def test_object_links_fill_a_textured_object_and_leave_the_sky(links):
    """experiments/hint_propagation, "Affinities that know objects": neighbour links at sigma 1 stop inside any texture;
    non-local links (KNN matting's, or a bilateral grid's cells) carry a hint over its textured object, not past it."""
    l, leaf = _foliage()
    ab = np.zeros(l.shape + (2,), np.float32)
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[22:26, 20:24], weight[22:26, 20:24] = (40.0, 30.0), 1.0
    far = {}
    for name, extra in (("neighbours", {}), ("objects", links)):
        out = propagate(l, ab, hint_ab, weight, pull=1e-4, geodesic=None, **extra)
        far[name] = np.abs(out - (40.0, 30.0)).max(axis=2)[leaf].mean()
        assert np.abs(out[~leaf]).max() < 0.5  # the sky keeps the network's colour
    assert far["neighbours"] > 30 and far["objects"] < 0.5 * far["neighbours"]


def test_a_geodesic_fall_off_keeps_a_hint_near_where_it_was_given():
    """experiments/hint_propagation, "A pull that grows with the distance from the hints": on a plain photo, with no
    edge to stop it, a hint still reaches nearby pixels but no longer the far side of the photo."""
    l = np.full((80, 80), 50.0, np.float32)
    ab = np.zeros(l.shape + (2,), np.float32)
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[38:42, 2:6], weight[38:42, 2:6] = (40.0, 30.0), 1.0
    plain = propagate(l, ab, hint_ab, weight, pull=1e-4, geodesic=None)
    falling = propagate(l, ab, hint_ab, weight, pull=1e-4, geodesic=0.12)
    assert falling[40, 10, 0] > 0.6 * plain[40, 10, 0] > 20  # near the hint: much of the colour
    assert falling[:, 70:, 0].mean() < 0.15 * plain[:, 70:, 0].mean()  # the far side: little of it
    assert np.allclose(falling[38:42, 2:6], (40.0, 30.0), atol=0.5)  # the hint itself is kept


def test_a_geodesic_step_across_the_networks_colours_costs_distance_too():
    """geodesic_ab (measured, off: experiments/hint_propagation, "The growing pull combined"): with one lightness
    everywhere, a change of the predicted colour makes the far side farther, so the pull there is stronger."""
    l = np.full((40, 80), 50.0, np.float32)
    ab = np.zeros(l.shape + (2,), np.float32)
    ab[:, 40:] = (0.0, 30.0)
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[18:22, 2:6], weight[18:22, 2:6] = (40.0, 30.0), 1.0
    plain = propagate(l, ab, hint_ab, weight, sigma_ab=None)
    walled = propagate(l, ab, hint_ab, weight, sigma_ab=None, geodesic_ab=0.5)
    moved = [[np.abs(out[:, cols] - ab[:, cols]).mean() for cols in (slice(0, 30), slice(50, 80))]
             for out in (plain, walled)]
    assert moved[1][0] > 0.85 * moved[0][0]  # this side of the colour edge: nearly the same
    assert moved[1][1] < 0.8 * moved[0][1]  # past it: clearly less


def test_pull_l_holds_back_a_much_lighter_region_that_a_smooth_shading_joins():
    """pull_l (measured, off: experiments/hint_propagation, "The growing pull combined"): L rises smoothly from the
    hint's 30 to 80, so no edge stops the hint; the pull that grows with the L difference keeps the light end."""
    l = np.tile(np.linspace(30.0, 80.0, 80, dtype=np.float32), (40, 1))
    ab = np.zeros(l.shape + (2,), np.float32)
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[18:22, 0:4], weight[18:22, 0:4] = (40.0, 30.0), 1.0
    plain = propagate(l, ab, hint_ab, weight, sigma=4.0, sigma_ab=None)
    held = propagate(l, ab, hint_ab, weight, sigma=4.0, sigma_ab=None, pull_l=10.0)
    assert held[20, 70, 0] < 0.5 * plain[20, 70, 0]
    assert np.allclose(held[18:22, 0:4], (40.0, 30.0), atol=0.5)


def test_features_of_many_channels_are_shrunk_with_a_large_render():
    """Above max_pixels the solve runs on a smaller copy, features included, whatever their number of channels."""
    l = _two_regions(90, 120)
    ab = np.zeros(l.shape + (2,), np.float32)
    hint_ab, weight = np.zeros_like(ab), np.zeros(l.shape, np.float32)
    hint_ab[40:44, 10:14], weight[40:44, 10:14] = (40.0, 30.0), 1.0
    features = np.repeat((l > 50)[..., None], 8, axis=2).astype(np.float32)  # 8 channels that know the two regions
    out = propagate(l, ab, hint_ab, weight, max_pixels=3000, features=features, sigma_features=0.5)
    assert np.abs(out[:, 70:]).max() < 2 and out[42, 20, 0] > 20
