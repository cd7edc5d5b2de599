"""evaluate's ``imagenet256`` protocol (each photo resized to 256x256 before scoring) and the dCF it reports."""

import json

import numpy as np
import pytest
from PIL import Image

from colorization.evaluation import evaluate, prepare_for_protocol, score_prepared
from colorization.images import read_image
from colorization.metrics import colorfulness
from colorization.paths import examples_dir

from test_cli import run


@pytest.fixture(scope="module")
def photo_256(tmp_path_factory):
    """A known colour photo (examples/coffee.jpg, 400x600) saved losslessly at 256x256."""
    path = tmp_path_factory.mktemp("protocol") / "coffee_256.png"
    Image.open(examples_dir() / "coffee.jpg").convert("RGB").resize((256, 256), Image.LANCZOS).save(path)
    return path


def test_a_photo_already_256_scores_the_same_under_both_protocols(colorizer, photo_256):
    full = evaluate(colorizer, [photo_256], render_size=64, progress=False)
    resized = evaluate(colorizer, [photo_256], render_size=64, progress=False, protocol="imagenet256")
    assert (full["protocol"], resized["protocol"]) == ("full", "imagenet256")
    keys = ("model", "gray", "ground_truth")
    assert {k: resized["per_image"][0][k] for k in keys} == {k: full["per_image"][0][k] for k in keys}
    assert {k: resized[k] for k in keys + ("psnr_gain",)} == {k: full[k] for k in keys + ("psnr_gain",)}


def test_imagenet256_scores_the_bicubic_256_copy(colorizer):
    """Truth and gray input are the photo's RGB resized to 256x256 by Pillow's bicubic filter, no crop."""
    source = examples_dir() / "coffee.jpg"
    report = evaluate(colorizer, [source], render_size=64, progress=False, protocol="imagenet256")
    truth = read_image(source).convert("RGB").resize((256, 256), Image.BICUBIC)
    prepared = prepare_for_protocol(read_image(source), "imagenet256")
    assert np.array_equal(prepared.truth, np.asarray(truth)) and prepared.l.shape == (256, 256)
    _, expected = score_prepared(colorizer, prepared, 64)
    assert report["per_image"][0]["model"] == expected["model"]
    assert report["ground_truth"]["colorfulness"] == colorfulness(np.asarray(truth))
    with pytest.raises(ValueError, match="unknown protocol"):
        prepare_for_protocol(read_image(source), "val50k")


def test_dcf_is_the_mean_per_photo_colourfulness_gap(colorizer):
    files = sorted(examples_dir().glob("*.jpg"))[:3]
    report = evaluate(colorizer, files, render_size=64, progress=False, protocol="imagenet256")
    for part in ("model", "gray"):
        gaps = [abs(r[part]["colorfulness"] - r["ground_truth"]["colorfulness"]) for r in report["per_image"]]
        assert [r[part]["colorfulness_gap"] for r in report["per_image"]] == gaps
        assert report[part]["colorfulness_gap"] == pytest.approx(np.mean(gaps), abs=1e-12)


def test_cli_protocol_is_written_to_the_json(tmp_path, weights_file, photo_256):
    out = tmp_path / "report.json"
    r = run("evaluate", "--weights", str(weights_file), "--data", str(examples_dir() / "coffee.jpg"),
            str(photo_256), "--render-size", "64", "--protocol", "imagenet256", "--json", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["protocol"] == "imagenet256" and report["images"] == 2
    assert {"psnr", "ssim", "colorfulness", "colorfulness_gap"} <= set(report["model"])
    assert "resized to 256x256 (imagenet256)" in r.stdout and "dCF" in r.stdout
    r = run("evaluate", "--data", str(photo_256), "--protocol", "val50k")
    assert r.returncode == 2 and "invalid choice" in r.stderr
