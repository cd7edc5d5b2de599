"""Annealed-mean temperature of a classification model, swept on held-out training-split photos.

    python bench/temperature_sweep.py weights/classification.safetensors [--temperatures 0.2 0.38 1]

The photos are the validation split the training run held out (same seed and count as its metadata),
never the evaluation folders: choosing a setting on the test photos would flatter it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from colorization.data import decode_photos, split_files  # noqa: E402
from colorization.paths import data_dir  # noqa: E402
from colorization.images import find_images  # noqa: E402
from colorization.train import validate  # noqa: E402
from colorization.weights import load_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.38, 0.5, 0.7, 1.0])
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args()
    model, meta = load_weights(args.weights)
    config = meta["training"]["config"]
    files = find_images([data_dir() / "train"])
    _, val_files = split_files(files, config["val_count"], config["seed"])
    photos = decode_photos(val_files, config["image_size"], workers=2, progress=False)
    rows = {}
    print(f"{len(photos.files)} held-out photos; T: PSNR (gray), SSIM (gray), colourfulness (truth)")
    for t in args.temperatures:
        model.temperature = t
        v = validate(model, photos.images, torch.device("cpu"))
        rows[t] = v
        print(f"T={t:<5} {v['model_psnr']:.2f} ({v['gray_psnr']:.2f})  {v['model_ssim']:.4f} ({v['gray_ssim']:.4f})  "
              f"{v['model_colorfulness']:.1f} ({v['truth_colorfulness']:.1f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
