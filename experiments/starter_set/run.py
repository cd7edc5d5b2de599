"""What the offline starter set teaches: notebook 2's CPU training run on it, scored on its evaluation photos.

Usage: python experiments/starter_set/run.py --out runs/starter-study [--json experiments/starter_set/results.json]
    [--grid experiments/starter_set/grid.jpg]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from colorization.evaluation import evaluate, format_table
from colorization.paths import weights_dir
from colorization.pipeline import load_colorizer
from colorization.plots import comparison_grid
from colorization.runtime import hardware_name
from colorization.sources import starter
from colorization.train import TrainConfig, train

# notebook 2's "cpu" settings, unchanged
CPU = dict(max_photos=5000, val_count=100, steps=300, batch_size=16, crop_size=96, val_every=50, log_every=10,
           warmup_steps=30, ema_decay=0.99, workers=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the run's folder")
    parser.add_argument("--json", help="write the scores here")
    parser.add_argument("--grid", help="write the pictures here: gray, this run, the shipped CNN, the original")
    args = parser.parse_args()
    source = starter()
    config = TrainConfig(data=[str(source.train)], out_dir=args.out, model="effnet-unet", pretrained=True,
                         title="EfficientNet-Lite0 U-Net on the starter set (notebook 2, cpu settings)", **CPU)
    start = time.perf_counter()
    best = train(config, progress=False)
    minutes = (time.perf_counter() - start) / 60
    files = source.eval_files()
    results = {"machine": hardware_name(torch.device("cpu")), "torch": torch.__version__, "threads":
               torch.get_num_threads(), "train_minutes": round(minutes, 1), "eval_photos": [f.name for f in files]}
    colorizers = {"starter run": load_colorizer(best), "shipped cnn": load_colorizer(weights_dir() / "cnn.safetensors")}
    for name, colorizer in colorizers.items():
        report = evaluate(colorizer, files, progress=False)
        print(format_table(report, f"{name} on the starter set's {len(files)} evaluation photos"), end="\n\n")
        results[name] = {part: report[part] for part in ("model", "gray", "ground_truth")}
    log = [json.loads(line) for line in (Path(args.out) / "log.jsonl").read_text().splitlines()]
    results["validation"] = [{"step": r["step"], "psnr_gain": r["val"]["psnr_gain"]} for r in log if "val" in r]
    print(f"trained {config.steps} steps in {minutes:.1f} min on {results['machine']}")
    if args.grid:
        comparison_grid(list(colorizers.values()), files, tile=200).save(args.grid, quality=85)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
