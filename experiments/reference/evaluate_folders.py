"""The reference protocol on every evaluation folder: ``evaluate --reference same`` and ``--reference unrelated``.

Writes one JSON: folder -> mode -> the evaluate report without its per-photo records, plus the worst photo of each
mode (the largest loss against the automatic result). Resumable: finished folders are kept.

    python experiments/reference/evaluate_folders.py --limit 100 --json experiments/reference/results/eval.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from colorization.evaluation import REFERENCE_MODES, evaluate
from colorization.paths import EVAL_FOLDERS, data_dir
from colorization.pipeline import load_colorizer
from colorization.runtime import hardware_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/cnn.safetensors")
    parser.add_argument("--folders", nargs="+", default=list(EVAL_FOLDERS))
    parser.add_argument("--limit", type=int, default=100, help="the first N photos of each folder (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    colorizer = load_colorizer(args.weights, device="cpu")
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    for folder in args.folders:
        if folder in results:
            continue
        results[folder] = {}
        for mode in REFERENCE_MODES:
            t = time.perf_counter()
            report = evaluate(colorizer, [data_dir() / "eval" / folder], limit=args.limit, reference=mode,
                              progress=False)
            worst = min(report["per_image"], key=lambda r: r["model"]["psnr"] - r["automatic_psnr"])
            results[folder][mode] = {
                **{k: v for k, v in report.items() if k != "per_image"},
                "worst": {"file": Path(worst["file"]).name, "gain": worst["model"]["psnr"] - worst["automatic_psnr"]},
                "seconds": round(time.perf_counter() - t, 1), "machine": hardware_name(torch.device("cpu")),
                "threads": args.threads}
            print(f"{folder} {mode}: {report['reference_gain']:+.2f} dB over automatic "
                  f"{report['automatic']['psnr']:.2f} ({report['images']} photos, gated {report['reference_gated']}, "
                  f"cells {report['reference_share']:.0%};"
                  f" colourfulness {report['model']['colorfulness']:.1f} vs {report['automatic']['colorfulness']:.1f},"
                  f" truth {report['ground_truth']['colorfulness']:.1f}; {results[folder][mode]['seconds']} s)",
                  flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
