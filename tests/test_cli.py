"""The command line as a user runs it: real subprocesses, exit codes, one-line errors."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m colorization ...`` as a user runs it, from a folder that is not the repository; ``env``: variables
    added to the environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "colorization", *args], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir(), timeout=600)


def test_evaluate_writes_the_documented_json(tmp_path, weights_file, eval_photos):
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in eval_photos[:8]:
        shutil.copy(p, folder)
    out = tmp_path / "report.json"
    r = run("evaluate", "--weights", str(weights_file), "--data", str(folder), "--json", str(out),
            "--render-size", "64")
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["images"] == 8 and report["render_size"] == 64 and len(report["per_image"]) == 8
    for part in ("model", "gray"):
        assert set(report[part]) >= {"psnr", "ssim", "colorfulness"}
    assert report["gray"]["colorfulness"] < 1.0 < report["ground_truth"]["colorfulness"]
    assert 0.5 < report["gray"]["ssim"] < 1.0
    assert "gray baseline" in r.stdout and "PSNR" in r.stdout


def test_evaluate_intensity_zero_is_the_gray_baseline(tmp_path, weights_file, eval_photos):
    """--intensity scales ab as the app's slider does; at 0 the model's scores are gray's exactly."""
    out = tmp_path / "report.json"
    r = run("evaluate", "--weights", str(weights_file), "--data", *map(str, eval_photos[:3]), "--json", str(out),
            "--render-size", "64", "--intensity", "0")
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["intensity"] == 0.0 and "intensity 0" in r.stdout
    assert report["model"] == report["gray"]
    _one_line_error(run("evaluate", "--weights", str(weights_file), "--data", str(eval_photos[0]),
                        "--intensity", "-1"), "--intensity")
    _one_line_error(run("evaluate", "--weights", str(weights_file), "--data", *map(str, eval_photos[:2]),
                        "--limit", "-1"), "--limit must be at least 0")


def test_colorize_folder_with_a_bad_file_colorizes_the_rest_and_fails(tmp_path, weights_file, eval_photos):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(eval_photos[0], folder / "a.png")
    Image.open(eval_photos[1]).convert("L").save(folder / "b.jpg")
    (folder / "broken.png").write_text("not an image")
    r = run("colorize", str(folder), "-o", str(tmp_path / "out"), "--weights", str(weights_file))
    assert r.returncode != 0
    assert "broken.png" in r.stderr and "Traceback" not in r.stderr
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["a.png", "b.png"]
    assert Image.open(tmp_path / "out" / "b.png").size == Image.open(folder / "b.jpg").size


def test_evaluate_a_folder_holding_a_one_pixel_photo(tmp_path, weights_file, eval_photos):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(eval_photos[0], folder / "a.png")
    Image.new("RGB", (1, 1), (200, 60, 30)).save(folder / "b_one_pixel.png")
    out = tmp_path / "report.json"
    r = run("evaluate", "--weights", str(weights_file), "--data", str(folder), "--render-size", "64",
            "--json", str(out))
    assert r.returncode == 0 and "error" not in r.stderr, r.stderr
    report = json.loads(out.read_text())
    assert report["images"] == 2 and report["per_image"][1]["gray"]["colorfulness"] == 0


def _one_line_error(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr


def test_clear_errors(tmp_path, weights_file):
    _one_line_error(run("colorize", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"),
                        "--weights", str(weights_file)), "no such file or folder")
    (tmp_path / "empty").mkdir()
    _one_line_error(run("evaluate", "--weights", str(weights_file), "--data", str(tmp_path / "empty")),
                    "no photos")
    fake = tmp_path / "fake.safetensors"
    fake.write_text("definitely not weights")
    _one_line_error(run("evaluate", "--weights", str(fake), "--data", str(tmp_path)), "fake.safetensors")
    _one_line_error(run("train", "--model", "vgg", "--steps", "1"), "unknown model 'vgg'")
    _one_line_error(run("train", "--data", str(tmp_path / "empty"), "--steps", "1"), "found 0")


def test_non_finite_numbers_are_refused(tmp_path, weights_file, eval_photos):
    """float() takes "nan" and "inf", which pass range checks: --temperature nan gave a near-black image, exit 0."""
    photo, out = str(eval_photos[0]), str(tmp_path / "out")
    for args in (["colorize", photo, "-o", out, "--weights", str(weights_file), "--temperature", "nan"],
                 ["colorize", photo, "-o", out, "--weights", str(weights_file), "--blend", "inf"],
                 ["evaluate", "--data", photo, "--weights", str(weights_file), "--intensity", "nan"],
                 ["evaluate-video", "clip.mp4", "--weights", str(weights_file), "--blend", "0.5", "NaN"],
                 ["train", "--lr=-inf", "--steps", "1"]):
        r = run(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "must be a finite number" in r.stderr.splitlines()[-1], r.stderr
    assert not (tmp_path / "out").exists()
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"lr": NaN}')  # Python's json reads NaN
    _one_line_error(run("train", "--config", str(recipe), "--steps", "1"), "'lr' must be a finite number")


def test_info_shows_metadata(weights_file):
    r = run("info", str(weights_file))
    assert r.returncode == 0
    assert json.loads(r.stdout)["model"]["name"] == "effnet-unet"


def test_interpolate_command_writes_a_loadable_mix(weights_file, tmp_path):
    out = tmp_path / "mix.safetensors"
    r = run("interpolate", str(weights_file), str(weights_file), "--alpha", "0.3", "-o", str(out), "--title", "mix")
    assert r.returncode == 0, r.stderr
    meta = json.loads(run("info", str(out)).stdout)
    assert meta["title"] == "mix" and [s["weight"] for s in meta["training"]["interpolated_from"]] == [0.7, 0.3]
    r = run("interpolate", str(weights_file), str(weights_file), "--alpha", "2", "-o", str(out))
    _one_line_error(r, "alpha")


def test_prior_command_then_classification_training_uses_it(tmp_path, train_photos):
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in train_photos[:8]:
        shutil.copy(p, folder)
    r = run("prior", "--data", str(folder), "-o", str(tmp_path / "prior.safetensors"), "--image-size", "32",
            "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert "prior over 261 ab bins from 8 photos" in r.stdout
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "prior.safetensors")
    assert saved["ab_bins"].shape == (261, 2) and abs(float(saved["prior"].sum()) - 1) < 1e-4
    r = run("train", "--data", str(folder), "--out-dir", str(tmp_path / "run"), "--model", "unet",
            "--model-args", '{"base_channels": 8, "depth": 2, "output": "classification"}', "--prior",
            str(tmp_path / "prior.safetensors"), "--steps", "3", "--batch-size", "2", "--image-size", "32",
            "--crop-size", "32", "--val-count", "1", "--workers", "0", "--warmup-steps", "1")
    assert r.returncode == 0, r.stderr
    from colorization.weights import load_weights

    model, meta = load_weights(tmp_path / "run" / "best.safetensors")
    assert meta["training"]["class_prior_from"] == str(tmp_path / "prior.safetensors")
    assert abs(float(model.class_prior.sum()) - 1) < 1e-4
    r = run("colorize", str(train_photos[0]), "-o", str(tmp_path / "out"), "--weights",
            str(tmp_path / "run" / "best.safetensors"), "--temperature", "0.2", "--render-size", "32")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / f"{train_photos[0].stem}.png").exists()


def test_errors_and_warnings_start_their_own_line_beside_the_progress_bar(tmp_path, weights_file, eval_photos):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(eval_photos[0], folder / "a.png")
    (folder / "b_broken.png").write_text("not an image")
    frames = [Image.new("RGB", (40, 30), (v, v, v)) for v in (30, 200)]
    frames[0].save(tmp_path / "c_animated.gif", save_all=True, append_images=frames[1:])
    shutil.copy(eval_photos[1], folder / "d.png")
    err = tmp_path / "stderr.log"
    with open(err, "wb") as log:  # stderr a file, as when logged; text=True would turn each "\r" into "\n"
        args = ["colorize", str(folder), str(tmp_path / "c_animated.gif"), "-o", str(tmp_path / "out"),
                "--weights", str(weights_file)]
        r = subprocess.run([sys.executable, "-m", "colorization", *args], stdout=subprocess.PIPE, stderr=log, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "2"}, cwd=tempfile.gettempdir(), timeout=600)
    r.stderr = err.read_bytes().decode()
    assert r.returncode == 1 and "colorize" in r.stderr  # the bar was drawn
    # splitlines() also splits on "\r": what a terminal shows as a line of its own starts the line here.
    lines = r.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("error:")] == [ln for ln in lines if "error:" in ln]
    assert any(ln.startswith("error:") and "b_broken.png" in ln for ln in lines), r.stderr
    assert any(ln.startswith("warning:") and "c_animated.gif" in ln and "only the first" in ln for ln in lines)
    # Also a line of its own in the file, where the bar's "\r" redraws are one line (as less and grep show it).
    in_a_file = r.stderr.split("\n")
    assert [ln for ln in in_a_file if "error:" in ln or "warning:" in ln] == [
        ln for ln in in_a_file if ln.startswith(("error:", "warning:"))], r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c_animated.png", "d.png"]


def test_an_unwritable_output_is_one_error_line(tmp_path, weights_file, eval_photos):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    _one_line_error(run("colorize", str(eval_photos[0]), "-o", str(blocker / "out"), "--weights", str(weights_file)),
                    str(blocker))


def test_colorize_with_hints_for_one_photo(tmp_path, weights_file, eval_photos):
    from colorization.hints import hint_image

    photo = Image.open(eval_photos[0])
    hints = tmp_path / "hints.png"
    hint_image([(photo.width // 2, photo.height // 2, "#d02020", 10)], photo.size).save(hints)
    plain = run("colorize", str(eval_photos[0]), "-o", str(tmp_path / "plain"), "--weights", str(weights_file))
    hinted = run("colorize", str(eval_photos[0]), "-o", str(tmp_path / "hinted"), "--weights", str(weights_file),
                 "--hints", str(hints))
    assert plain.returncode == hinted.returncode == 0, hinted.stderr
    name = eval_photos[0].stem + ".png"
    a, b = (np.asarray(Image.open(tmp_path / d / name)).astype(int) for d in ("plain", "hinted"))
    y, x = photo.height // 2, photo.width // 2
    assert b[y, x, 0] - b[y, x, 1] > a[y, x, 0] - a[y, x, 1] + 20  # redder where the hint is
    cast = run("colorize", str(eval_photos[0]), "-o", str(tmp_path / "cast"), "--weights", str(weights_file),
               "--hints", str(hints), "--reach", "photo")
    c = np.asarray(Image.open(tmp_path / "cast" / name)).astype(int)
    assert cast.returncode == 0 and (np.abs(c - a).max(-1) > 6).mean() > (np.abs(b - a).max(-1) > 6).mean()
    _one_line_error(run("colorize", str(eval_photos[0]), str(eval_photos[1]), "-o", str(tmp_path / "two"),
                        "--weights", str(weights_file), "--hints", str(hints)), "one photo")
    hint_image([], (7, 5)).save(tmp_path / "small.png")
    _one_line_error(run("colorize", str(eval_photos[0]), "-o", str(tmp_path / "bad"), "--weights", str(weights_file),
                        "--hints", str(tmp_path / "small.png")), "photo's size")


def test_evaluate_with_simulated_hints(tmp_path, weights_file, eval_photos):
    reports = {}
    for n in (0, 10):
        out = tmp_path / f"hints{n}.json"
        r = run("evaluate", "--weights", str(weights_file), "--data", *map(str, eval_photos[:3]), "--json", str(out),
                "--render-size", "64", "--hints", str(n), "--seed", "3")
        assert r.returncode == 0, r.stderr
        reports[n] = json.loads(out.read_text())
    assert reports[0]["hints"] == 0 and reports[10]["hints"] == 10 and reports[10]["hint_seed"] == 3
    assert "10 simulated hints" in r.stdout
    # hints from the truth's own colours move the result towards the truth; gray is untouched
    assert reports[10]["model"]["psnr"] > reports[0]["model"]["psnr"] + 0.3
    assert reports[10]["gray"] == reports[0]["gray"]


def test_a_render_size_is_bounded_by_the_memory_it_implies(tmp_path, weights_file):
    """Issue 26: ``colorize --render-size 32768`` passed 9 GB. A size whose activations fit no photo is refused
    before any photo; one that fits a square photo but not a long strip refuses the strip only."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(folder / "square.png")
    Image.fromarray(np.full((100, 400, 3), 120, np.uint8)).save(folder / "strip.png")
    # At 128 the test model needs about 14 MB for a square photo and 57 MB for the 4:1 strip (512 x 128).
    r = run("colorize", str(folder), "-o", str(tmp_path / "small"), "--weights", str(weights_file),
            "--render-size", "128", env={"COLORIZE_MAX_ACTIVATION_GB": "0.03"})
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(errors) == 1 and "strip.png: at render size 128 the network would see 512x128 pixels" in errors[0]
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == ["square.png"]
    for command in (["colorize", str(folder), "-o", str(tmp_path / "huge")], ["evaluate", "--data", str(folder)]):
        r = run(*command, "--weights", str(weights_file), "--render-size", "32768")
        _one_line_error(r, "render size 32768 needs about")
        assert "COLORIZE_MAX_ACTIVATION_GB" in r.stderr
    assert not (tmp_path / "huge").exists()


def test_colorize_with_a_reference_photo(tmp_path, weights_file, eval_photos):
    photo, reference = eval_photos[0], eval_photos[1]
    r = run("colorize", str(photo), str(eval_photos[2]), "-o", str(tmp_path / "out"), "--weights", str(weights_file),
            "--reference", str(reference))
    assert r.returncode == 0, r.stderr
    assert "colorized 2 of 2 photos" in r.stdout
    assert Image.open(tmp_path / "out" / (photo.stem + ".png")).size == Image.open(photo).size
    Image.open(reference).convert("L").save(tmp_path / "gray.png")
    _one_line_error(run("colorize", str(photo), "-o", str(tmp_path / "gray"), "--weights", str(weights_file),
                        "--reference", str(tmp_path / "gray.png")), "the reference has no colour to give")
    (tmp_path / "notes.jpg").write_text("not a photo")
    _one_line_error(run("colorize", str(photo), "-o", str(tmp_path / "bad"), "--weights", str(weights_file),
                        "--reference", str(tmp_path / "notes.jpg")), "not an image")
    assert not (tmp_path / "gray").exists() and not (tmp_path / "bad").exists()  # refused before any photo


def test_evaluate_with_a_reference_records_the_mode_and_both_sides(tmp_path, weights_file, eval_photos):
    reports = {}
    for mode in ("same", "unrelated"):
        out = tmp_path / f"{mode}.json"
        r = run("evaluate", "--weights", str(weights_file), "--data", *map(str, eval_photos[:3]), "--json", str(out),
                "--render-size", "64", "--reference", mode)
        assert r.returncode == 0, r.stderr
        assert f"reference ({mode})" in r.stdout
        reports[mode] = json.loads(out.read_text())
    for mode, report in reports.items():
        assert report["reference"] == mode and report["images"] == 3
        assert abs(report["reference_gain"] - (report["model"]["psnr"] - report["automatic"]["psnr"])) < 1e-9
        assert 0 <= report["reference_share"] <= 1 and 0 <= report["reference_gated"] <= 3
        assert report["automatic"]["colorfulness"] >= 0
    assert reports["same"]["gray"] == reports["unrelated"]["gray"]  # the baseline does not depend on the mode
    plain = run("evaluate", "--weights", str(weights_file), "--data", str(eval_photos[0]), "--render-size", "64",
                "--json", str(tmp_path / "plain.json"))
    assert plain.returncode == 0 and json.loads((tmp_path / "plain.json").read_text())["reference"] is None
