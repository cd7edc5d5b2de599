"""evaluate's folder means stay numbers (and its JSON valid JSON) whatever the photos: gray ones, tiny ones."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from colorization.evaluation import PSNR_CEILING, evaluate, format_table, summarize


def _record(model_psnr: float, gray_psnr: float, ssim: float = 0.9) -> dict:
    part = {"psnr": model_psnr, "ssim": ssim, "colorfulness": 10.0, "colorfulness_gap": 1.0}
    return {"model": part, "gray": {**part, "psnr": gray_psnr}, "ground_truth": {"colorfulness": 11.0}}


def test_an_exact_photo_counts_at_the_8_bit_ceiling_not_infinity():
    """A gray photo's gray baseline is the photo itself: PSNR inf, and the folder's gain was -inf. Each photo's PSNR
    counts at most 58.92 dB, where the error would be under 8-bit rounding's own (1/12 of a level squared)."""
    assert PSNR_CEILING == pytest.approx(10 * math.log10(255**2 * 12)) and 58.9 < PSNR_CEILING < 59.0
    summary = summarize([_record(30.0, math.inf), _record(40.0, 20.0), _record(70.0, 25.0)])
    assert summary["gray"]["psnr"] == pytest.approx((PSNR_CEILING + 20.0 + 25.0) / 3)
    assert summary["model"]["psnr"] == pytest.approx((30.0 + 40.0 + PSNR_CEILING) / 3)
    assert math.isfinite(summary["psnr_gain"])
    plain = summarize([_record(30.0, 20.0), _record(40.0, 22.0)])  # no photo near the ceiling: the plain means
    assert (plain["model"]["psnr"], plain["gray"]["psnr"], plain["psnr_gain"]) == (35.0, 21.0, 14.0)
    assert set(plain) == {"model", "gray", "ground_truth", "psnr_gain"}  # the schema training validation shares


def test_ssim_is_the_mean_over_the_photos_that_have_one():
    summary = summarize([_record(30.0, 20.0, ssim=0.8), _record(30.0, 20.0, ssim=math.nan),
                         _record(30.0, 20.0, ssim=0.6)])
    assert summary["model"]["ssim"] == pytest.approx(0.7)
    none = summarize([_record(30.0, 20.0, ssim=math.nan)])
    assert none["model"]["ssim"] is None and none["gray"]["ssim"] is None


def _save(path, rgb) -> None:
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(path)


def test_a_folder_of_gray_and_tiny_photos_gives_numbers_and_valid_json(colorizer, tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "gray"
    folder.mkdir()
    for i in range(3):
        _save(folder / f"gray{i}.png", np.repeat(rng.integers(0, 256, (40, 56, 1)), 3, axis=2))
    report = evaluate(colorizer, [folder], render_size=64, progress=False)
    assert report["images"] == 3 and report["psnr_capped"] == {"model": 0, "gray": 3}
    assert report["gray"]["psnr"] == pytest.approx(PSNR_CEILING) and math.isfinite(report["psnr_gain"])
    json.dumps(report, allow_nan=False)  # raises on inf or NaN, which JSON cannot hold

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    _save(tiny / "a_2x2.png", rng.integers(0, 256, (2, 2, 3)))
    _save(tiny / "b_32x48.png", rng.integers(0, 256, (32, 48, 3)))
    report = evaluate(colorizer, [tiny], render_size=64, progress=False)
    assert report["images"] == 2 and report["ssim_photos"] == 1
    assert report["model"]["ssim"] == pytest.approx(report["per_image"][1]["model"]["ssim"])
    assert report["per_image"][0]["model"]["ssim"] is None  # a photo without an SSIM says so in the JSON too
    json.dumps(report, allow_nan=False)
    only_tiny = evaluate(colorizer, [tiny / "a_2x2.png"], render_size=64, progress=False)
    assert only_tiny["ssim_photos"] == 0 and only_tiny["model"]["ssim"] is None
    assert "n/a" in format_table(only_tiny).splitlines()[1]


def test_a_negative_limit_is_refused(colorizer, tmp_path):
    """files[:-1] dropped the last photo without a word."""
    for i in range(2):
        _save(tmp_path / f"p{i}.png", np.full((16, 16, 3), 60 * i, np.uint8))
    assert evaluate(colorizer, [tmp_path], render_size=64, limit=1, progress=False)["images"] == 1
    with pytest.raises(ValueError, match="limit must be at least 0"):
        evaluate(colorizer, [tmp_path], render_size=64, limit=-1, progress=False)


def test_a_photo_too_long_for_the_render_size_memory_is_an_error_and_the_rest_are_scored(colorizer, tmp_path,
                                                                                          monkeypatch):
    """At render size 128 the test model needs about 14 MB for a square photo and 57 MB for a 4:1 strip."""
    _save(tmp_path / "square.png", np.full((64, 64, 3), 100, np.uint8))
    _save(tmp_path / "strip.png", np.full((100, 400, 3), 100, np.uint8))
    monkeypatch.setenv("COLORIZE_MAX_ACTIVATION_GB", "0.03")
    report = evaluate(colorizer, [tmp_path], render_size=128, progress=False)
    assert report["images"] == 1 and report["per_image"][0]["file"].endswith("square.png")
    (error,) = report["errors"]
    assert "strip.png: at render size 128 the network would see 512x128 pixels" in error


def test_the_reference_protocol_makes_its_references_and_refuses_what_it_cannot_measure(colorizer, tmp_path):
    from colorization.evaluation import protocol_reference

    truth = np.zeros((50, 100, 3), np.uint8)
    truth[:, :10] = (200, 30, 30)  # a red band on the left
    same = np.asarray(protocol_reference(truth, "same"))
    assert same.shape == (40, 80, 3) and same[:, -4:, 0].mean() > 150 and same[:, :4, 0].mean() < 10  # mirrored
    other = np.full((30, 30, 3), 90, np.uint8)
    assert np.array_equal(np.asarray(protocol_reference(truth, "unrelated", other)), other)
    with pytest.raises(ValueError, match="unknown reference mode"):
        protocol_reference(truth, "sideways")
    _save(tmp_path / "a.png", truth)
    with pytest.raises(ValueError, match="unknown reference mode"):
        evaluate(colorizer, [tmp_path], reference="sideways", progress=False)
    with pytest.raises(ValueError, match="one at a time"):
        evaluate(colorizer, [tmp_path], reference="same", hints=5, progress=False)


def test_a_photo_whose_reference_is_gray_is_scored_without_one_in_both_modes(colorizer, tmp_path):
    """A nearly gray photo cannot be its own reference ("no colour to give"), nor the next photo's: it is scored
    without one and counted, so both modes score the same photos against the same automatic result."""
    rng = np.random.default_rng(0)
    _save(tmp_path / "a_colour.png", rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    _save(tmp_path / "b_gray.png", np.repeat(rng.integers(0, 256, (40, 60, 1), dtype=np.uint8), 3, axis=2))
    reports = {mode: evaluate(colorizer, [tmp_path], reference=mode, progress=False) for mode in ("same", "unrelated")}
    for mode, report in reports.items():
        assert report["images"] == 2 and not report["errors"] and report["reference_refused"] == 1, mode
        assert report["reference_gated"] >= 1
    assert reports["same"]["automatic"] == reports["unrelated"]["automatic"]
    assert "1 references gray" in format_table(reports["same"])
