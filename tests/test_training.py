"""Training end to end on real photos: the loss falls, a killed run resumes exactly, the CLI works.

Output that cannot be written (a file in the way, a read-only folder, a full disk) ends in one clear line.
"""

import builtins
import copy
import errno
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import pytest

import colorization.weights
from colorization.cli import main
from colorization.evaluation import evaluate
from colorization.paths import data_dir, weights_dir
from colorization.pipeline import load_colorizer
from colorization.train import TrainConfig, holdout_split, train
from colorization.files import atomic_write
from colorization.weights import load_weights, read_metadata

RECIPES = Path(__file__).resolve().parent.parent / "recipes"



def _losses(out_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out_dir / "log.jsonl").read_text().splitlines())
            if "loss" in r}


def test_thirty_steps_on_sixteen_real_photos_lower_the_loss(tmp_path, train_photos):
    config = TrainConfig(data=[str(p) for p in train_photos], out_dir=str(tmp_path / "run"), model="effnet-unet",
                         steps=30, batch_size=8, image_size=64, crop_size=64, lr=2e-3, warmup_steps=3,
                         val_count=4, val_every=30, checkpoint_every=30, log_every=1, workers=0, ema_decay=0.9)
    best = train(config, progress=False)
    losses = _losses(tmp_path / "run")
    assert sorted(losses) == list(range(1, 31))
    first, last = sum(losses[s] for s in range(1, 6)) / 5, sum(losses[s] for s in range(26, 31)) / 5
    assert last < 0.8 * first, (first, last)
    model, meta = load_weights(best)
    assert meta["training"]["steps"] == 30
    assert meta["training"]["train_photos"] + meta["training"]["val_photos"] == 16
    assert meta["metrics"]["validation"]["gray"]["ssim"] > 0.5

    # Validation speaks evaluate's schema: the same parts, each with the same keys.
    val = [r["val"] for r in map(json.loads, (tmp_path / "run" / "log.jsonl").read_text().splitlines()) if "val" in r]
    assert meta["metrics"]["validation"] == val[-1]
    report = evaluate(load_colorizer(best, device="cpu"), train_photos[:2], render_size=64, progress=False)
    assert set(val[-1]) == {"model", "gray", "ground_truth", "psnr_gain"}
    for key, part in val[-1].items():
        assert type(part) is type(report[key]) and (not isinstance(part, dict) or part.keys() == report[key].keys())


def test_held_out_folders_are_validated_on_and_never_trained_on(tmp_path, train_photos):
    import shutil

    data, held = tmp_path / "data", tmp_path / "data" / "held_collection"
    held.mkdir(parents=True)
    for i, p in enumerate(train_photos):
        shutil.copy(p, (held if i < 6 else data) / p.name)
    config = TrainConfig(data=[str(data)], val_data=[str(held)], val_count=4, seed=3)
    train_files, val_files = holdout_split(config)
    assert len(train_files) == 10 and len(val_files) == 4  # at most val_count of the held-out folder
    assert all(f.parent == held for f in val_files) and not any(f.parent == held for f in train_files)
    assert holdout_split(config) == (train_files, val_files)  # seeded
    # a random split when no folder is named: the same count, drawn from everywhere
    assert [len(x) for x in holdout_split(TrainConfig(data=[str(data)], val_count=3))] == [13, 3]
    with pytest.raises(ValueError, match="no photos to validate on"):
        (tmp_path / "empty").mkdir()
        holdout_split(TrainConfig(data=[str(data)], val_data=[str(tmp_path / "empty")]))

    run = TrainConfig(data=[str(data)], val_data=[str(held)], out_dir=str(tmp_path / "run"), model="unet",
                      model_args={"base_channels": 8, "depth": 3}, steps=4, batch_size=4, image_size=32,
                      crop_size=32, val_count=4, val_every=4, checkpoint_every=4, workers=0, warmup_steps=1)
    _, meta = load_weights(train(run, progress=False))
    assert (meta["training"]["train_photos"], meta["training"]["val_photos"]) == (10, 4)
    assert meta["training"]["config"]["val_data"] == [str(held)]


def _cli_train(out_dir: Path, photos, *extra: str) -> list[str]:
    return [sys.executable, "-m", "colorization", "train", "--data", *map(str, photos), "--out-dir", str(out_dir),
            "--model", "unet", "--model-args", '{"base_channels": 8, "depth": 2}', "--steps", "40",
            "--batch-size", "4", "--image-size", "32", "--crop-size", "32", "--val-count", "2", "--val-every", "20",
            "--checkpoint-every", "5", "--log-every", "1", "--workers", "0", "--warmup-steps", "2", *extra]


def _checkpoint_step(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["step"]
    except Exception:  # not written yet
        return -1


# Runs ``python -m colorization ARGS...`` that stops inside optimiser step N (after the update, before the step
# is logged), writes MARKER and waits there to be killed: a kill at a known point, however fast the machine.
_STOP_AT_STEP = """
import sys, time
from pathlib import Path
from torch.optim.optimizer import register_optimizer_step_post_hook
from colorization.cli import main

stop_at, marker, steps = int(sys.argv[1]), Path(sys.argv[2]), []

def stop(optimizer, args, kwargs):
    steps.append(1)
    if len(steps) == stop_at:
        marker.write_text(str(stop_at))
        time.sleep(600)

register_optimizer_step_post_hook(stop)
sys.exit(main(sys.argv[3:]))
"""


def _logged_steps(out_dir: Path) -> list[int]:
    """The step of each training line of the log, in order, repeats included."""
    return [r["step"] for r in map(json.loads, (out_dir / "log.jsonl").read_text().splitlines()) if "loss" in r]


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path, train_photos):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    photos = train_photos[:8]
    straight, killed, stopped = tmp_path / "straight", tmp_path / "killed", tmp_path / "stopped"
    subprocess.run(_cli_train(straight, photos), check=True, env=env, cwd=tmp_path, capture_output=True)

    # Stopped inside step 13: three steps past the checkpoint of step 10, two of them logged.
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", _STOP_AT_STEP, "13", str(stopped),
                                 *_cli_train(killed, photos)[3:]], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 300
        while not stopped.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        status = proc.wait()
    assert running and stopped.exists(), (tmp_path / "stderr.txt").read_text()[-2000:]
    assert status == -signal.SIGKILL  # killed mid-run, not finished
    assert _checkpoint_step(killed / "checkpoint.pt") == 10
    assert _logged_steps(killed) == list(range(1, 13))  # steps 11 and 12 logged past the checkpoint

    subprocess.run(_cli_train(killed, photos, "--resume"), check=True, env=env, cwd=tmp_path, capture_output=True)
    assert _logged_steps(killed) == list(range(1, 41))  # each step logged exactly once, in order
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 40
    for key in a["model"]:
        assert torch.allclose(a["model"][key].float(), b["model"][key].float(), atol=1e-5), key
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()


def test_classification_run_learns_its_prior_and_a_time_budget_cuts_its_steps(tmp_path, train_photos, monkeypatch):
    # The training loop's clock is a fake that each optimiser step moves on by 1/32 s, so the cut is the same
    # on any machine: measured on steps 20-100 at 1/32 s a step, with 4 - 100/32 = 0.875 s left, 8 % of it
    # kept for validation, 25 more steps fit.
    import colorization.train as training

    now = [0.0]
    clock = types.ModuleType("time")
    clock.__dict__.update(vars(time))
    clock.perf_counter = lambda: now[0]
    monkeypatch.setattr(training, "time", clock)
    tick = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: now.__setitem__(0, now[0] + 1 / 32))
    config = TrainConfig(data=[str(p) for p in train_photos], out_dir=str(tmp_path / "run"), model="unet",
                         model_args={"base_channels": 8, "depth": 2, "output": "classification"}, steps=400,
                         time_budget_s=4.0, batch_size=4, image_size=32, crop_size=32, warmup_steps=5,
                         val_count=2, val_every=50, checkpoint_every=50, workers=0, cache_dir=str(tmp_path / "cache"))
    as_given = copy.deepcopy(config)
    try:
        best = train(config, progress=False)
    finally:
        tick.remove()
    assert config == as_given  # the budget cut the run, not the caller's config
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    budget = next(r for r in records if "steps_for_budget" in r)
    assert budget == {"step": 100, "steps_for_budget": 125, "seconds_per_step": 0.03125}
    assert max(r["step"] for r in records) == 125
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if "loss" in r)
    model, meta = load_weights(best)
    assert (meta["training"]["total_steps"], meta["training"]["config"]["steps"]) == (125, 400)
    assert meta["training"]["class_prior_from"] == "14 training photos"
    prior = model.class_prior
    assert torch.isclose(prior.sum(), torch.tensor(1.0), atol=1e-4) and prior.max() > 5 / len(prior)
    assert list((tmp_path / "cache").glob("photos32-color-*.safetensors"))


@pytest.fixture
def tiny_photos(tmp_path) -> list[Path]:
    """Six small random colour photos, so the I/O tests need no shared data."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    paths = [tmp_path / "photos" / f"{i}.png" for i in range(6)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    return paths


def _main_args(out_dir: Path, photos, *extra: str) -> list[str]:
    """``cli.main`` arguments for a 2-step run that writes its log, weights and checkpoint."""
    return _cli_train(out_dir, photos, "--steps", "2", "--val-every", "2", "--checkpoint-every", "2", *extra)[3:]


def _assert_one_error_line(capsys, status: int, path: Path, cause: str) -> None:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1, err
    assert str(path) in errors[0] and cause in errors[0], errors[0]
    assert "Traceback" not in err


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if training gets as far as decoding photos: these errors must come first."""
    def decode(*args, **kwargs):
        raise AssertionError("photos were decoded before the output folder was checked")

    # importlib: the package's ``train`` attribute is the function, not the module
    monkeypatch.setattr(importlib.import_module("colorization.train"), "decode_photos", decode)


def _refuse_writes(monkeypatch, under: Path, code: int) -> None:
    """Opening a file for writing at or under ``under`` fails with ``code``, as on a read-only or full disk."""
    real_os_open, real_open = os.open, builtins.open

    def refuse(path) -> None:
        if str(path).startswith(str(under)):
            raise OSError(code, os.strerror(code), str(path))

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if set(mode) & set("wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)


@pytest.mark.parametrize("where", ["is_a_file", "under_a_file"])
def test_an_output_folder_blocked_by_a_file_is_one_error_line(tmp_path, tiny_photos, capsys, no_decoding, where):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" if where == "is_a_file" else tmp_path / "file" / "run"
    _assert_one_error_line(capsys, main(_main_args(out, tiny_photos)), out, "is a file, not a folder")


@pytest.mark.parametrize("how", ["chmod", "simulated"])
def test_a_read_only_output_folder_is_one_error_line(tmp_path, tiny_photos, capsys, monkeypatch, no_decoding, how):
    out = tmp_path / "run"
    out.mkdir()
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the simulated case covers this")
        out.chmod(0o555)
    else:
        _refuse_writes(monkeypatch, out, errno.EROFS)
    try:
        status = main(_main_args(out, tiny_photos))
    finally:
        out.chmod(0o755)
    cause = "Permission denied" if how == "chmod" else "Read-only file system"
    _assert_one_error_line(capsys, status, out, cause)


@pytest.mark.parametrize("file", ["log.jsonl", "best.safetensors", "checkpoint.pt"])
def test_a_full_disk_during_training_is_one_error_line(tmp_path, tiny_photos, capsys, monkeypatch, file):
    out = tmp_path / "run"
    if file == "log.jsonl":
        _refuse_writes(monkeypatch, out / file, errno.ENOSPC)
    else:
        # As on a real full disk: torch and safetensors raise errors of their own, and no space is left.
        def torch_save(obj, path):
            Path(path).write_bytes(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

        def save_file(tensors, path, metadata=None):
            from safetensors import SafetensorError

            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

        if file == "checkpoint.pt":
            monkeypatch.setattr(torch, "save", torch_save)
        else:
            monkeypatch.setattr(colorization.weights, "save_file", save_file)
        monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=0, f_frsize=4096))
    status = main(_main_args(out, tiny_photos))
    _assert_one_error_line(capsys, status, out / file, "No space left on device")
    assert not list(out.glob(".*.tmp"))  # no half-written file left behind


def test_a_recipe_file_trains_with_flags_over_it(tmp_path, train_photos):
    folder = train_photos[0].parent.relative_to(data_dir())
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({
        "data": [str(folder)], "max_photos": 6, "out_dir": str(tmp_path / "run"), "model": "unet",
        "model_args": {"base_channels": 8, "depth": 2}, "steps": 50, "batch_size": 4, "image_size": 32,
        "crop_size": 32, "val_count": 2, "val_every": 2, "checkpoint_every": 2, "workers": 0, "warmup_steps": 1}))
    assert main(["train", "--config", str(recipe), "--steps", "2", "--lr", "0.003"]) == 0
    config = read_metadata(tmp_path / "run" / "best.safetensors")["training"]["config"]
    assert (config["steps"], config["lr"]) == (2, 0.003)  # the flags win
    assert (config["max_photos"], config["model_args"]) == (6, {"base_channels": 8, "depth": 2})  # the file's
    assert config["data"] == [str(data_dir() / folder)]  # a recipe's data lies in the photo collection


def test_a_recipe_with_an_unknown_key_is_one_error_line(tmp_path, capsys, no_decoding):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"steps": 5, "learning_rate": 0.1}))
    status = main(["train", "--config", str(recipe)])
    _assert_one_error_line(capsys, status, recipe, "unknown config keys: learning_rate; known: data, out_dir, model")


def test_each_recipe_loads_and_is_the_config_recorded_in_its_weights_file():
    recipes = {path.stem: TrainConfig.from_recipe(path) for path in sorted(RECIPES.glob("*.json"))}
    assert {"cnn_stage1", "cnn_stage2", "cnn_stage3", "gan", "classification", "unet", "fusion"} <= set(recipes)
    assert all(config.data == [str(data_dir() / "train")] for config in recipes.values())
    # What names one machine (data folder, outputs, starting file, decode cache, time budget) may differ.
    machine = {"data", "out_dir", "init_weights", "cache_dir", "time_budget_s"}
    made_by = {"cnn": ["cnn_stage2", "cnn_stage3"], "gan": ["gan"], "classification": ["classification"],
               "unet": ["unet"], "fusion": ["fusion"]}
    for name, parts in made_by.items():
        path = weights_dir() / f"{name}.safetensors"
        if not path.is_file():
            continue
        training = read_metadata(path)["training"]
        runs = [part["training"] for part in training.get("interpolated_from", [])] or [training]
        for recipe, run in zip(parts, runs, strict=True):
            recorded = {k: v for k, v in run["config"].items() if k not in machine}
            assert {k: getattr(recipes[recipe], k) for k in recorded} == recorded, recipe
            assert recipes[recipe].steps == run["total_steps"] and recipes[recipe].time_budget_s == 0


def test_resume_without_a_checkpoint_says_so(tmp_path, tiny_photos, capsys, no_decoding):
    out = tmp_path / "run"
    status = main(_main_args(out, tiny_photos, "--resume"))
    _assert_one_error_line(capsys, status, out / "checkpoint.pt", "run without --resume")


def test_a_writer_failing_with_space_left_keeps_its_own_error(tmp_path):
    def write(tmp):
        raise RuntimeError("a bug, not a full disk")

    with pytest.raises(RuntimeError, match="a bug"):
        atomic_write(tmp_path / "x.pt", write)
    assert list(tmp_path.iterdir()) == []


def test_a_fine_tune_validating_on_its_starting_points_training_photos_is_warned(tmp_path, train_photos, eval_photos):
    from colorization.train import validation_overlap

    base = dict(data=[str(p) for p in train_photos], steps=2, batch_size=4, image_size=32, crop_size=32, val_count=4,
                val_every=2, checkpoint_every=2, log_every=1, workers=0, model="unet",
                model_args={"base_channels": 8, "depth": 2})
    first = train(TrainConfig(**base, out_dir=str(tmp_path / "first"), seed=0), progress=False)
    # Another seed draws another validation split: some of it was the first run's training photos.
    reseeded = TrainConfig(**base, out_dir=str(tmp_path / "second"), seed=5, init_weights=str(first))
    _, val_files = holdout_split(reseeded)
    overlap = validation_overlap(first, val_files, reseeded.data)
    assert overlap and overlap > 0
    with pytest.warns(UserWarning, match=r"\d+ of the \d+ validation photos are training photos of"):
        train(reseeded, progress=False)
    # Its own split, or photos it never saw, are fine.
    for config in (TrainConfig(**base, out_dir=str(tmp_path / "third"), seed=0, init_weights=str(first)),
                   TrainConfig(**{**base, "data": base["data"] + [str(p) for p in eval_photos[:4]]},
                               val_data=[str(p) for p in eval_photos[:4]], out_dir=str(tmp_path / "fourth"),
                               init_weights=str(first))):
        _, val_files = holdout_split(config)
        assert validation_overlap(first, val_files, config.data) in (0, None)
