"""Training end to end on real photos: the loss falls, a killed run resumes exactly, the CLI works."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import pytest

from colorization.train import TrainConfig, holdout_split, train
from colorization.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]


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
    assert meta["metrics"]["validation"]["gray_ssim"] > 0.5


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


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path, train_photos):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    photos = train_photos[:8]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cli_train(straight, photos), check=True, env=env, cwd=ROOT, capture_output=True)

    proc = subprocess.Popen(_cli_train(killed, photos), env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _checkpoint_step(killed / "checkpoint.pt") < 10 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = _checkpoint_step(killed / "checkpoint.pt")
    assert 10 <= step_at_kill < 40, "the run should have been killed mid-way"
    lines_before = _losses(killed)
    assert all(s in lines_before for s in range(1, step_at_kill + 1))  # nothing before the checkpoint lost

    subprocess.run(_cli_train(killed, photos, "--resume"), check=True, env=env, cwd=ROOT, capture_output=True)
    assert sorted(_losses(killed)) == list(range(1, 41))  # each step logged exactly once
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 40
    for key in a["model"]:
        assert torch.allclose(a["model"][key].float(), b["model"][key].float(), atol=1e-5), key
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()


def test_classification_run_learns_its_prior_and_a_time_budget_cuts_its_steps(tmp_path, train_photos):
    config = TrainConfig(data=[str(p) for p in train_photos], out_dir=str(tmp_path / "run"), model="unet",
                         model_args={"base_channels": 8, "depth": 2, "output": "classification"}, steps=5000,
                         time_budget_s=4.0, batch_size=4, image_size=32, crop_size=32, warmup_steps=5,
                         val_count=2, val_every=50, checkpoint_every=50, workers=0, cache_dir=str(tmp_path / "cache"))
    best = train(config, progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    budget = next(r for r in records if "steps_for_budget" in r)
    assert budget["step"] == 100 and 100 < budget["steps_for_budget"] < 5000
    assert max(r["step"] for r in records) == budget["steps_for_budget"]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if "loss" in r)
    model, meta = load_weights(best)
    assert meta["training"]["class_prior_from"] == "14 training photos"
    prior = model.class_prior
    assert torch.isclose(prior.sum(), torch.tensor(1.0), atol=1e-4) and prior.max() > 5 / len(prior)
    assert list((tmp_path / "cache").glob("photos32-color-*.safetensors"))
