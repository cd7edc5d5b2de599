"""The README's comparison of every model, from measured reports plus a fresh CPU latency run.

    python release/comparison_table.py --out weights/eval/comparison.md

Reads ``weights/eval/<name>/eval_<folder>.json`` (written by ``release/measure_weights.py``) for each model
and times each shipped model's whole pipeline on a 1024x768 photo on this CPU (as ``python
bench/benchmark.py latency`` does for its first row). A model whose weights file is no longer shipped
(``fusion``) keeps its row from its stored reports, marked "not shipped"; its latency cannot be measured
again, so the one already in ``--out`` is kept (else "-").
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorization.images import read_image
from colorization.paths import EVAL_FOLDERS, weights_dir
from colorization.pipeline import load_colorizer

FOLDERS = list(EVAL_FOLDERS)
MODELS = ["unet", "cnn", "classification", "fusion", "gan"]


def pipeline_p50_ms(weights: Path, runs: int, threads: int = 2) -> float:
    """Median ms of the whole pipeline (decode, colorize, compose) on skimage's coffee at 1024x768."""
    from skimage import data

    torch.set_num_threads(threads)
    colorizer = load_colorizer(str(weights), device="cpu")
    buffer = io.BytesIO()
    Image.fromarray(data.coffee()).resize((1024, 768), Image.LANCZOS).save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    times = []
    with torch.inference_mode():
        for i in range(runs + 3):  # 3 untimed warm-up calls
            start = time.perf_counter()
            colorizer(read_image(io.BytesIO(jpeg)))
            if i >= 3:
                times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1e3)


def stored_latency(out: Path, model: str) -> str:
    """The latency cell of ``model``'s PSNR row in an earlier table at ``out``, else "-"."""
    if out.is_file():
        for line in out.read_text().splitlines():
            if line.startswith(f"| {model} (") and line.count("|") == len(FOLDERS) + 3:
                return line.split("|")[2].strip()
    return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--reports", default=str(weights_dir() / "eval"), help="folder of <name>/eval_<folder>.json")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    out = Path(args.out)
    reports = {m: {f: json.loads((Path(args.reports) / m / f"eval_{f}.json").read_text()) for f in FOLDERS}
               for m in MODELS}
    first = reports[MODELS[0]]
    latency, label = {}, {}
    for m in MODELS:
        weights = weights_dir() / f"{m}.safetensors"
        size = reports[m][FOLDERS[0]]["render_size"]
        if weights.is_file():
            latency[m] = f"{pipeline_p50_ms(weights, args.runs):.0f}"
            label[m] = f"{m} ({size})"
        else:
            latency[m] = stored_latency(out, m)
            label[m] = f"{m} ({size}), not shipped"
        print(f"{label[m]}: p50 {latency[m]} ms", flush=True)

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    head = "| model | " + " | ".join(FOLDERS) + " |"
    rule = "|---|" + "---:|" * len(FOLDERS)
    lines = ["**PSNR in dB** (gain over gray in brackets; CPU latency of the whole pipeline, 1024x768, "
             "2 threads, p50 in ms):", "",
             "| model | latency | " + " | ".join(FOLDERS) + " |", "|---|---:|" + "---:|" * len(FOLDERS),
             row("gray baseline", ["-"] + [f"{first[f]['gray']['psnr']:.2f}" for f in FOLDERS])]
    for m in MODELS:
        lines.append(row(label[m], [latency[m]] + [f"{reports[m][f]['model']['psnr']:.2f} "
                                                   f"({reports[m][f]['model']['psnr'] - reports[m][f]['gray']['psnr']:+.2f})"
                                                   for f in FOLDERS]))
    lines += ["", "**SSIM** (gray's first):", "", head, rule,
              row("gray baseline", [f"{first[f]['gray']['ssim']:.4f}" for f in FOLDERS])]
    lines += [row(m, [f"{reports[m][f]['model']['ssim']:.4f}" for f in FOLDERS]) for m in MODELS]
    lines += ["", "**Colourfulness** (share of the originals' in brackets):", "", head, rule,
              row("original", [f"{first[f]['ground_truth']['colorfulness']:.1f}" for f in FOLDERS]),
              row("gray baseline", [f"{first[f]['gray']['colorfulness']:.1f}" for f in FOLDERS])]
    lines += [row(m, [f"{reports[m][f]['model']['colorfulness']:.1f} "
                      f"({reports[m][f]['model']['colorfulness'] / reports[m][f]['ground_truth']['colorfulness']:.0%})"
                      for f in FOLDERS]) for m in MODELS]
    lines += ["", "Photos per folder: " + ", ".join(f"{f} {first[f]['images']}" for f in FOLDERS)
              + f". Render size in brackets after the model's name. Latency on 2 threads, {args.runs} runs after "
              "warm-up; a model not shipped keeps the latency measured while it was."]
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
