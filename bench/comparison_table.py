"""The README's comparison of every shipped model, from measured reports plus a fresh CPU latency run.

    python bench/comparison_table.py --out bench/results/comparison.md

Reads ``bench/results/<name>/eval_<folder>.json`` (written by ``bench/measure_weights.py``) for each
``weights/<name>.safetensors`` and times each model's whole pipeline on a 1024x768 photo on this CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorization.bench import latency  # noqa: E402
from colorization.weights import read_metadata  # noqa: E402

FOLDERS = ["Kodak24", "McMaster18", "Sun_Hays80", "BSDS500_test", "imagenet_sample"]
MODELS = ["unet", "cnn", "classification", "fusion", "gan"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    reports = {m: {f: json.loads((ROOT / "bench" / "results" / m / f"eval_{f}.json").read_text()) for f in FOLDERS}
               for m in MODELS}
    first = reports[MODELS[0]]
    ms = {}
    for m in MODELS:
        ms[m] = latency(str(ROOT / "weights" / f"{m}.safetensors"), runs=args.runs, threads=2)
        print(f"{m}: {ms[m]['rows']}", flush=True)

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    head = "| model | " + " | ".join(FOLDERS) + " |"
    rule = "|---|" + "---:|" * len(FOLDERS)
    lines = ["**PSNR in dB** (gain over gray in brackets; CPU latency of the whole pipeline, 1024x768, "
             "2 threads, p50 in ms):", "",
             "| model | latency | " + " | ".join(FOLDERS) + " |", "|---|---:|" + "---:|" * len(FOLDERS),
             row("gray baseline", ["-"] + [f"{first[f]['gray']['psnr']:.2f}" for f in FOLDERS])]
    for m in MODELS:
        p50 = next(iter(ms[m]["rows"].values()))[0]
        lines.append(row(f"{m} ({read_metadata(ROOT / 'weights' / f'{m}.safetensors')['render_size']})",
                         [f"{p50:.0f}"] + [f"{reports[m][f]['model']['psnr']:.2f} "
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
              + f". Render size in brackets after the model's name. Latency on {ms[MODELS[0]]['threads']} threads, "
              f"{args.runs} runs after warm-up."]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
