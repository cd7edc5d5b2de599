"""Annealed-mean temperature of a classification model, swept on held-out training-split photos.

    python experiments/temperature_sweep/temperature_sweep.py weights/classification.safetensors \
        [--temperatures 0.2 0.38 1] [--json experiments/temperature_sweep/results/classification.json]

The photos are the validation split the training run held out (``train.holdout_split`` with the file's
training config: its seed, ``val_count``, ``val_data`` and ``max_photos``, over ``--train-data`` on this
machine), never the evaluation folders: choosing a setting on the test photos would flatter it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from colorization.data import decode_photos
from colorization.paths import data_dir
from colorization.train import TrainConfig, holdout_split, validate
from colorization.weights import load_weights, training_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.38, 0.5, 0.7, 1.0])
    parser.add_argument("--train-data", default=str(data_dir() / "train"),
                        help="the training photos on this machine (the run's own path is the GPU machine's)")
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args()
    model, meta = load_weights(args.weights)
    config = training_config(meta)
    if not config:
        raise SystemExit(f"{args.weights}: no training config in its metadata, so no split to rebuild")
    _, val_files = holdout_split(TrainConfig.from_dict({**config, "data": [args.train_data]}))
    photos = decode_photos(val_files, config["image_size"], workers=2, progress=False)
    rows = {}
    print(f"{len(photos.files)} held-out photos; T: PSNR (gray), SSIM (gray), colourfulness (truth)")
    for t in args.temperatures:
        model.temperature = t
        v = validate(model, photos.images, torch.device("cpu"))
        rows[t] = v
        m, g = v["model"], v["gray"]
        print(f"T={t:<5} {m['psnr']:.2f} ({g['psnr']:.2f})  {m['ssim']:.4f} ({g['ssim']:.4f})  "
              f"{m['colorfulness']:.1f} ({v['ground_truth']['colorfulness']:.1f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
