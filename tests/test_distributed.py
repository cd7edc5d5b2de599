"""torchrun with 2 processes (gloo on the CPU): sharded data, identical weights, falling loss, resume."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def torchrun(out_dir: Path, photos: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "colorization", "train", "--data", str(photos), "--out-dir", str(out_dir),
           "--model", "unet", "--model-args", '{"base_channels": 8, "depth": 2}', "--steps", str(steps),
           "--batch-size", "4", "--image-size", "32", "--crop-size", "32", "--val-count", "4",
           "--val-every", "10", "--checkpoint-every", "10", "--log-every", "1", "--workers", "0",
           "--warmup-steps", "2", "--lr", "3e-3", *extra]
    return subprocess.run(cmd, env=env, cwd=out_dir.parent, capture_output=True, text=True, timeout=300)


def records(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]


def test_two_processes_train_in_sync_and_resume(tmp_path, train_photos):
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in train_photos:
        shutil.copy(p, photos)
    out = tmp_path / "run"
    r = torchrun(out, photos, 30)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("best weights:") == 1  # only rank 0 speaks
    log = records(out)
    sums = [rec["rank_checksums"] for rec in log if "rank_checksums" in rec]
    assert len(sums) == 1 and len(sums[0]) == 2
    assert sums[0][0] == pytest.approx(sums[0][1], rel=1e-9, abs=1e-9)
    losses = {rec["step"]: rec["loss"] for rec in log if "loss" in rec}
    assert sorted(losses) == list(range(1, 31))
    first, last = sum(losses[s] for s in range(1, 6)) / 5, sum(losses[s] for s in range(26, 31)) / 5
    assert last < first, (first, last)

    r = torchrun(out, photos, 40, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    log = records(out)
    assert sorted(rec["step"] for rec in log if "loss" in rec) == list(range(1, 41))
    sums = [rec["rank_checksums"] for rec in log if "rank_checksums" in rec]
    assert sums[-1][0] == pytest.approx(sums[-1][1], rel=1e-9, abs=1e-9)
