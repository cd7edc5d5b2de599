"""Which matches should a reference photo give as hints? Both sides of the reference protocol, per setting.

For each photo: the automatic result, and for each matching setting (stride / least cosine similarity / least softmax
confidence / most colour spread among the likely matches, "none": no limit / "mutual" nearest neighbours only or
"all") the PSNR and colourfulness with three references: "same" and "unrelated" as ``evaluate --reference``
makes them (``colorization.evaluation.protocol_reference``), and "partial", the photo's own top-left 60 % crop
(half the photo's content, at another scale: a diagnostic nearer a real reference of the same scene). Each
match's share of cells is kept per photo, so the image-level gate (``min_share``) is applied afterwards: a photo
whose share is under it gets the automatic result. The network and the encoder run once per photo and reference;
only the matching and the solve repeat per setting.

    python experiments/reference/sweep.py --selection 100 --json experiments/reference/results/selection.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorization.evaluation import protocol_reference
from colorization.hints import propagate
from colorization.images import find_images, read_image
from colorization.metrics import colorfulness, image_metrics
from colorization.paths import EVAL_FOLDERS, data_dir
from colorization.pipeline import compose, load_colorizer, prepare, upsample_ab
from colorization.reference import prepare_reference, reference_hints

MODES = ("same", "unrelated", "partial")
GATES = (0.0, 0.02, 0.05, 0.1, 0.2)


def reference_for(truth: np.ndarray, mode: str, next_truth: np.ndarray) -> Image.Image:
    if mode == "partial":
        h, w = truth.shape[:2]
        return Image.fromarray(truth[: round(h * 0.6), : round(w * 0.6)], "RGB")
    return protocol_reference(truth, mode, next_truth)


def key(setting: tuple) -> str:
    stride, similarity, confidence, spread, mutual = setting
    return f"{stride}/{similarity:g}/{confidence:g}/{'none' if spread is None else f'{spread:g}'}/" + (
        "mutual" if mutual else "all")


def photo_scores(colorizer, prepared, next_truth, settings: list[tuple]) -> dict:
    l_small = colorizer.l_small(prepared.l)

    def scores(ab_small) -> dict:
        rgb = np.asarray(compose(prepared.l, upsample_ab(ab_small, prepared.l.shape)))
        return {"psnr": image_metrics(rgb, prepared.truth)["psnr"], "colorfulness": colorfulness(rgb)}

    net = colorizer.predict_ab_from_small(l_small)
    record = {"automatic": scores(net), "modes": {}}
    for mode in MODES:
        ref = prepare_reference(reference_for(prepared.truth, mode, next_truth), l_small.shape)
        rows = {}
        for setting in settings:
            stride, similarity, confidence, spread, mutual = setting
            matches = reference_hints(colorizer, l_small, ref, stride=stride, min_similarity=similarity,
                                      min_confidence=confidence, max_spread=spread, mutual=mutual, min_share=0.0)
            # The uniform pull these thresholds were chosen with (propagate's default until 2026-12-05).
            ab = propagate(l_small, net, matches.hint_ab, matches.hint_weight, geodesic=None)
            rows[key(setting)] = {"share": matches.share, **scores(ab)}
        record["modes"][mode] = rows
    return record


def summarise(records: list[dict], keys: list[str]) -> dict:
    automatic = float(np.mean([r["automatic"]["psnr"] for r in records]))
    out = {"photos": len(records), "automatic": automatic,
           "automatic_colorfulness": float(np.mean([r["automatic"]["colorfulness"] for r in records])),
           "settings": {}}
    for name, gate in itertools.product(keys, GATES):
        row = {}
        for mode in MODES:
            cells = [r["modes"][mode][name] for r in records]
            passed = [c["share"] >= gate for c in cells]
            psnr = [c["psnr"] if p else r["automatic"]["psnr"] for c, p, r in zip(cells, passed, records)]
            colour = [c["colorfulness"] if p else r["automatic"]["colorfulness"]
                      for c, p, r in zip(cells, passed, records)]
            row[mode] = {"gain": float(np.mean(psnr)) - automatic, "colorfulness": float(np.mean(colour)),
                         "passed": int(sum(passed))}
        out["settings"][f"{name}/share{gate:g}"] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/cnn.safetensors")
    parser.add_argument("--selection", type=int, default=100,
                        help="this many photos (seeded) of the collections no network here trained on (the hint "
                             "recipe's val_data, as experiments/hint_propagation/two_sided.py); 0: --folders")
    parser.add_argument("--folders", nargs="+", default=list(EVAL_FOLDERS))
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--strides", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--similarities", type=float, nargs="+", default=[0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--confidences", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--spreads", nargs="+", default=["none"], help="ab units, or none")
    parser.add_argument("--mutual", nargs="+", default=["mutual"], choices=["mutual", "all"])
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    colorizer = load_colorizer(args.weights, device="cpu")
    spreads = [None if s == "none" else float(s) for s in args.spreads]
    settings = list(itertools.product(args.strides, args.similarities, args.confidences, spreads,
                                      [m == "mutual" for m in args.mutual]))
    keys = [key(s) for s in settings]
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    for folder in (["selection"] if args.selection else args.folders):
        if folder in results:
            continue
        if args.selection:
            unseen = json.loads(Path("recipes/hints_gpu.json").read_text())["val_data"]
            files = sorted(random.Random(0).sample(find_images([data_dir() / c for c in unseen]), args.selection))
        else:
            files = find_images([data_dir() / "eval" / folder])[: args.limit]
        t = time.perf_counter()
        truths = [prepare(read_image(f)) for f in files]
        records = [photo_scores(colorizer, p, truths[(i + 1) % len(truths)].truth, settings)
                   for i, p in enumerate(truths)]
        results[folder] = {"weights": args.weights, "render_size": colorizer.render_size,
                           "seconds": round(time.perf_counter() - t, 1), **summarise(records, keys)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        best = sorted(results[folder]["settings"].items(), key=lambda kv: -kv[1]["same"]["gain"])[:5]
        for name, row in best:
            print(folder, name, *(f"{m} {row[m]['gain']:+.2f} ({row[m]['passed']})" for m in MODES), flush=True)


if __name__ == "__main__":
    main()
