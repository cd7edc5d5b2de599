import json

from PIL import Image

from colorization.plots import comparison_grid, plot_training_log, read_log


def test_training_curves_from_a_log(tmp_path):
    log = tmp_path / "log.jsonl"
    val = {"model_psnr": 23.0, "gray_psnr": 22.5, "model_colorfulness": 12.0, "truth_colorfulness": 35.0}
    lines = [{"step": s, "loss": 1.0 / s, "lr": 1e-3, "images_per_s": 10.0} for s in range(1, 41)]
    lines += [{"step": 20, "val": val}, {"step": 40, "val": {**val, "model_psnr": 23.4}}]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))
    train, validation = read_log(log)
    assert len(train) == 40 and [r["step"] for r in validation] == [20, 40]
    # Old logs' flat keys come back in evaluate's schema, as new logs are written.
    assert validation[1]["val"] == {"model": {"psnr": 23.4, "colorfulness": 12.0}, "gray": {"psnr": 22.5},
                                    "ground_truth": {"colorfulness": 35.0}, "psnr_gain": 23.4 - 22.5}
    log.write_text("".join(json.dumps(r) + "\n" for r in lines[:40] + validation))
    assert read_log(log) == (train, validation)
    out = tmp_path / "curves.png"
    plot_training_log(log, out, title="test")
    assert Image.open(out).size[0] > 800


def test_comparison_grid_has_gray_each_model_and_truth(colorizer, eval_photos):
    grid = comparison_grid([colorizer, colorizer], eval_photos[:2], tile=64, render_size=64)
    # each row: gray, two results, the original, 64 px wide each and as high as the photo's aspect makes them
    heights = [round(Image.open(p).height * 64 / Image.open(p).width) for p in eval_photos[:2]]
    assert grid.size == (4 * 64, sum(heights))
