"""How far a model's colours are from the truth's in strength, per folder: the chroma gain and an intensity sweep.

    python experiments/chroma_gain/chroma_gain.py weights/cnn.safetensors \
        --out experiments/chroma_gain/results/cnn.json [--intensities 1 1.15 1.3 1.5]

For the training run's held-out photos and every evaluation folder: the least-squares gain
``s* = sum(pred . truth) / sum(pred . pred)`` over every pixel's ab (the one factor that, multiplied
into the predicted ab, comes closest to the truth's: above 1 the model is too pale there, below 1 too
vivid), then PSNR, SSIM and colourfulness at each intensity (the app's slider) beside gray. Writes
the JSON file ``--out``. If the folders want gains on both sides of 1, no single intensity serves them all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from colorization.color import rgb_to_lab
from colorization.evaluation import score_prepared
from colorization.images import find_images, read_image
from colorization.pipeline import load_colorizer, prepare
from colorization.paths import EVAL_FOLDERS, data_dir
from colorization.train import run_split


def measure(colorizer, files, intensities) -> dict:
    """s* and the mean scores of model (per intensity), gray and truth over ``files``."""
    dot = norm = 0.0
    sums = {f"{x:g}": {"psnr": 0.0, "ssim": 0.0, "colorfulness": 0.0} for x in intensities}
    gray = {"psnr": 0.0, "ssim": 0.0, "colorfulness": 0.0}
    truth_colour = 0.0
    for path in files:
        prepared = prepare(read_image(path))
        ab = colorizer.predict_ab(prepared.l).astype(np.float64)
        ab_truth = rgb_to_lab(prepared.rgb)[..., 1:].astype(np.float64)
        dot += float((ab * ab_truth).sum())
        norm += float((ab * ab).sum())
        for x in intensities:
            _, scores = score_prepared(colorizer, prepared, intensity=x)
            for k, v in scores["model"].items():
                sums[f"{x:g}"][k] += v / len(files)
        for k, v in scores["gray"].items():
            gray[k] += v / len(files)
        truth_colour += scores["ground_truth"]["colorfulness"] / len(files)
    return {"photos": len(files), "s_star": dot / norm, "intensity": sums, "gray": gray,
            "ground_truth": {"colorfulness": truth_colour}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--intensities", type=float, nargs="+", default=[1.0, 1.15, 1.3, 1.5])
    parser.add_argument("--train-data", default=str(data_dir() / "train"), help="for the held-out photos")
    args = parser.parse_args()
    colorizer = load_colorizer(args.weights, device="cpu")
    sets = {"held_out": run_split(args.weights, args.train_data)[1]}
    sets.update({name: find_images([data_dir() / "eval" / name]) for name in EVAL_FOLDERS})
    results = {"weights": args.weights, "render_size": colorizer.render_size, "folders": {}}
    print("| folder | s* | " + " | ".join(f"x{x:g}: dB / SSIM-gray / colour" for x in args.intensities) + " |")
    for name, files in sets.items():
        r = measure(colorizer, files, args.intensities)
        results["folders"][name] = r
        cells = []
        for x, m in r["intensity"].items():
            share = m["colorfulness"] / r["ground_truth"]["colorfulness"]
            cells.append(f"{m['psnr'] - r['gray']['psnr']:+.2f} / {m['ssim'] - r['gray']['ssim']:+.4f} / {share:.0%}")
        print(f"| {name} ({r['photos']}) | {r['s_star']:.2f} | " + " | ".join(cells) + " |", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
