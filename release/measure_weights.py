"""Measure a weights file for its model card: render-size sweep, then every evaluation folder.

    python release/measure_weights.py weights/cnn.safetensors --out weights/eval/cnn [--record]

Writes ``render_sizes.json`` (PSNR/SSIM/colourfulness of model and gray per render size on a
subset: every photo of the small folders, the first 200 of imagenet_sample) and ``eval_<folder>.json``
(the full ``evaluate`` report, per-image rows dropped) at the chosen size. ``--record`` also writes
the scores into the weights file's metadata (``metrics.evaluation``), so ``info`` shows them.
``--held-out DATA`` measures instead the training run's validation photos (rebuilt by its own rule,
``train.holdout_split``, from the seed, count and ``val_data`` in the file's training config, with DATA
as the training folder) and, with
``--record``, writes that into ``metrics.validation``: for files that no training run validated,
such as an interpolation of two runs. ``--hints 0 1 2 5 10 20`` measures instead the hint curve on every
evaluation folder (``evaluate --hints N --seed S``; seed 0 for every N, ``--seeds`` more at ``--spread-at``)
into ``hints.json``, per folder, count and seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from colorization.paths import EVAL_FOLDERS, data_dir
from colorization.evaluation import evaluate, format_table
from colorization.images import find_images
from colorization.data import decode_photos
from colorization.pipeline import load_colorizer
from colorization.train import run_split, validate
from colorization.weights import read_metadata, update_metadata

DATA = data_dir()
FOLDERS = list(EVAL_FOLDERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192, 224, 256, 320])
    parser.add_argument("--render-size", type=int, help="skip the sweep and use this size")
    parser.add_argument("--subset-imagenet", type=int, default=200)
    parser.add_argument("--record", action="store_true", help="write the scores into the weights' metadata")
    parser.add_argument("--sweep-only", action="store_true", help="stop after the render-size sweep")
    parser.add_argument("--record-only", action="store_true",
                        help="only record the reports already in --out into the weights' metadata")
    parser.add_argument("--held-out", metavar="DATA", help="measure the training run's validation split of DATA")
    parser.add_argument("--hints", type=int, nargs="+", help="measure the hint curve at these counts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="hint seeds at --spread-at")
    parser.add_argument("--spread-at", type=int, default=10, help="the hint count measured with every seed")
    parser.add_argument("--folders", nargs="+", default=FOLDERS, choices=FOLDERS, help="evaluation folders (default: all)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.record_only:
        reports = {name: json.loads((out / f"eval_{name}.json").read_text()) for name in FOLDERS}
        record(args.weights, reports)
        return
    if args.held_out:
        held_out(args)
        return
    if args.hints:
        hint_curve(args)
        return
    colorizer = load_colorizer(args.weights, device="cpu")

    size = args.render_size
    if size is None:
        subset = [f for name in FOLDERS[:-1] for f in find_images([DATA / "eval" / name])]
        subset += find_images([DATA / "eval" / FOLDERS[-1]])[: args.subset_imagenet]
        sweep = {}
        for s in args.sizes:
            report = evaluate(colorizer, subset, s, progress=False)
            sweep[s] = {k: report[k] for k in ("images", "model", "gray", "ground_truth")}
            print(format_table(report, f"render size {s}"), flush=True)
        (out / "render_sizes.json").write_text(json.dumps(sweep, indent=1))
        # PSNR gain over gray decides; the gray baseline does not depend on the render size.
        size = max(sweep, key=lambda s: sweep[s]["model"]["psnr"])
        print(f"chosen render size: {size}")
        if args.sweep_only:
            return

    reports = {}
    for name in FOLDERS:
        report = evaluate(colorizer, [DATA / "eval" / name], size, progress=False)
        report.pop("per_image")
        (out / f"eval_{name}.json").write_text(json.dumps(report, indent=1))
        print(format_table(report, name), flush=True)
        reports[name] = report
    if args.record:
        record(args.weights, reports)


def held_out(args) -> None:
    """The training split's held-out photos, scored as ``train`` validates (128 px, model and gray)."""
    meta = read_metadata(args.weights)
    _, val_files, config = run_split(args.weights, args.held_out)
    photos = decode_photos(val_files, config["image_size"], workers=2, progress=False)
    colorizer = load_colorizer(args.weights, device="cpu")
    scores = validate(colorizer.model, photos.images, torch.device("cpu"))
    scores.update(photos=len(photos.files), val_count=config["val_count"], seed=config["seed"], data=args.held_out)
    (Path(args.out) / "held_out.json").write_text(json.dumps(scores, indent=1))
    print(json.dumps(scores, indent=1))
    if args.record:
        metrics = meta.get("metrics") or {}
        metrics["validation"] = scores
        update_metadata(args.weights, {"metrics": metrics})


def hint_curve(args) -> None:
    """Every evaluation folder at each hint count (seed 0) and at ``spread_at`` with every seed, into hints.json."""
    colorizer = load_colorizer(args.weights, device="cpu", render_size=args.render_size)
    runs = sorted({(n, 0) for n in args.hints} | {(args.spread_at, s) for s in args.seeds})
    path = Path(args.out) / "hints.json"
    curve = {"weights": args.weights, "render_size": colorizer.render_size, "takes_hints": colorizer.takes_hints,
             "protocol": "evaluate --hints N --seed S (colorization.hints.simulated_hints; leak: leak_probe)",
             "folders": {}}
    for name in args.folders:
        folder = curve["folders"].setdefault(name, {})
        for n, seed in runs:
            report = evaluate(colorizer, [DATA / "eval" / name], hints=n, seed=seed, progress=False)
            keys = ("images", "model", "gray", "ground_truth", "automatic", "hint_gain", "leak", "leak_photos")
            folder.setdefault(str(n), {})[str(seed)] = {k: report[k] for k in keys if k in report}
            print(f"{name} hints {n} seed {seed}: PSNR {report['model']['psnr']:.2f} (gray {report['gray']['psnr']:.2f}), "
                  f"colourfulness {report['model']['colorfulness']:.1f} of {report['ground_truth']['colorfulness']:.1f}",
                  flush=True)
            path.write_text(json.dumps(curve, indent=1))  # after each run: a long measurement keeps what it has
    print(hint_table(curve))


def hint_table(curve: dict) -> str:
    """The model card's hint table (markdown) from a hints.json: PSNR per hint count (seed 0), both sides at 10."""
    counts = sorted({int(n) for folder in curve["folders"].values() for n in folder})
    rows = [f"| folder (photos) | gray | {' | '.join(f'{n} hints' for n in counts)} | gain at 10 | leak (photos) "
            "| colourfulness at 0 / 10 hints (originals) |",
            "|---|---:|" + "---:|" * len(counts) + "---:|---:|---|"]
    for name, folder in curve["folders"].items():
        runs = {int(n): seeds["0"] for n, seeds in folder.items() if "0" in seeds}
        first, ten = runs[min(runs)], runs.get(10)
        truth = first["ground_truth"]["colorfulness"]
        cells = [f"{runs[n]['model']['psnr']:.2f}" if n in runs else "" for n in counts]
        sides = [f"{ten['hint_gain']:+.2f}", f"{100 * ten['leak']:.0f} % ({ten['leak_photos']})"] if ten and "leak" in ten \
            else ["", ""]
        colour = " / ".join(f"{r['model']['colorfulness']:.1f} ({100 * r['model']['colorfulness'] / truth:.0f} %)"
                            for r in (runs.get(0, first), ten) if r)
        rows.append(f"| {name} ({first['images']}) | {first['gray']['psnr']:.2f} | {' | '.join(cells)} | "
                    f"{' | '.join(sides)} | {colour} ({truth:.1f}) |")
    return "\n".join(rows)


def record(weights: str, reports: dict) -> None:
    """Write per-folder scores (model, gray, truth) into the weights file's ``metrics.evaluation``."""
    sizes = {r["render_size"] for r in reports.values()}
    if len(sizes) != 1:
        raise SystemExit(f"reports at several render sizes: {sorted(sizes)}")
    size = sizes.pop()
    folders = {name: {k: r[k] for k in ("images", "render_size", "model", "gray", "ground_truth")}
               for name, r in reports.items()}
    metrics = read_metadata(weights).get("metrics") or {}
    metrics["evaluation"] = {"command": f"python -m colorization evaluate --data ../shared/data/eval/<folder> "
                                        f"--render-size {size}", "folders": folders}
    update_metadata(weights, {"metrics": metrics, "render_size": size})


if __name__ == "__main__":
    main()
