"""The notebooks' helpers (colorization.notebook): the scored picture grid and the exercises' short runs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from colorization.evaluation import evaluate  # noqa: E402
from colorization.notebook import ShortRun, expect, scored_grid, short_run  # noqa: E402
from colorization.paths import examples_dir  # noqa: E402
from colorization.pipeline import load_colorizer  # noqa: E402
from colorization.train import TrainConfig  # noqa: E402

COLOUR_PHOTOS = [examples_dir() / name for name in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg")]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> ShortRun:
    config = TrainConfig(data=[str(p) for p in COLOUR_PHOTOS], out_dir=str(tmp_path_factory.mktemp("runs") / "base"),
                         model="unet", model_args={"base_channels": 4, "depth": 2}, pretrained=False, steps=4,
                         batch_size=2, image_size=32, crop_size=32, val_count=1, val_every=2, log_every=1,
                         warmup_steps=1, ema_decay=0.0, workers=0)
    return short_run(config, "ema_decay=0.5", ema_decay=0.5)


def test_a_short_run_makes_its_one_change_in_a_folder_of_its_own(tiny_run):
    assert tiny_run.config.ema_decay == 0.5 and tiny_run.config.out_dir.endswith("base-ema_decay0.5")
    assert tiny_run.steps == [2, 4] and len(tiny_run.gains) == len(tiny_run.colorfulness) == 2
    assert tiny_run.best_step in tiny_run.steps and len(tiny_run.losses["loss"]) == 4
    assert tiny_run.mean_loss("loss", 2) == pytest.approx(sum(tiny_run.losses["loss"][-2:]) / 2)
    assert tiny_run.row().startswith("ema_decay=0.5") and "first" in ShortRun.HEADER


def test_the_grid_scores_each_tile_as_evaluate_scores_the_photo(tiny_run, capsys):
    colorizer = load_colorizer(f"{tiny_run.config.out_dir}/best.safetensors", device="cpu")
    fig, records = scored_grid([colorizer], COLOUR_PHOTOS[:2], ["gray", "tiny", "original"], tile=64)
    report = evaluate(colorizer, COLOUR_PHOTOS[:2], progress=False)
    by_file = {r["file"]: r for r in report["per_image"]}
    for path, (record,) in zip(COLOUR_PHOTOS[:2], records):
        assert record["model"]["psnr"] == pytest.approx(by_file[str(path)]["model"]["psnr"], abs=1e-6)
        assert record["gray"]["psnr"] == pytest.approx(by_file[str(path)]["gray"]["psnr"], abs=1e-6)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["astronaut.jpg", "chelsea.jpg"]
    assert len(ax.texts) == 2 * 3  # every tile of both rows says its scores
    assert ax.texts[0].get_text().endswith("| CF 0") and "(" in ax.texts[1].get_text()
    plt.close(fig)

    assert expect("a claim", False, "a record", loose="why") is False
    said = capsys.readouterr().out
    assert "a claim: NO" in said and "a record" in said and "loose check: why" in said
