"""The propagation's two knobs (affinity sigma and the pull to zero), swept on photos the CNN never trained on.

    python experiments/hint_propagation/hint_propagation.py [--weights weights/cnn.safetensors] [--photos 100]
        [--hints 2 10] [--json experiments/hint_propagation/results/cnn.json]

The photos are a seeded sample of the training collections added after the shipped models were trained
(``../shared/data/README.md``: rooms, food, clothes, groceries, street fashion, cars, crowds, street scenes),
never the evaluation folders: choosing a setting on the test photos would flatter it. Hints are simulated as
``evaluate --hints N`` does (:func:`colorization.hints.simulated_hints`, seeded by the photo's index).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from colorization import load_colorizer, prepare, read_image
from colorization.evaluation import score_images, summarize
from colorization.hints import hints_at, propagate, simulated_hints
from colorization.images import find_images
from colorization.paths import data_dir
from colorization.pipeline import compose, upsample_ab

NEW_COLLECTIONS = ["houses_rooms", "food101_subset", "clothing_small", "grocery_store", "ccp_street_fashion",
                   "stanford_cars_rbfix", "shanghaitech_crowds", "camvid_streets"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/cnn.safetensors")
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--hints", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[4, 8, 16])
    parser.add_argument("--pulls", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
    parser.add_argument("--json")
    args = parser.parse_args()
    colorizer = load_colorizer(args.weights, device="cpu")
    files = find_images([data_dir() / "train" / name for name in NEW_COLLECTIONS])
    files = sorted(random.Random(0).sample(files, args.photos))
    photos = []
    for index, path in enumerate(files):
        prepared = prepare(read_image(path))
        l_small = colorizer.l_small(prepared.l)
        photos.append((index, prepared, l_small, colorizer.predict_ab_small(prepared.l)))
    rows = []
    print(f"{len(photos)} photos, render size {colorizer.render_size}; N hints, sigma, pull: PSNR (gray), colourfulness "
          "(truth), ms per solve", flush=True)
    for n in args.hints:
        hints = [hints_at(simulated_hints(p.truth, n, i), l_small.shape) for i, p, l_small, _ in photos]
        for sigma in args.sigmas:
            for pull in args.pulls:
                records, start = [], time.perf_counter()
                for (_, prepared, l_small, ab), hint in zip(photos, hints):
                    ab = propagate(l_small, ab, *hint, sigma=sigma, pull=pull, geodesic=None)  # as recorded
                    result = np.asarray(compose(prepared.l, upsample_ab(ab, prepared.l.shape)))
                    records.append(score_images(result, np.asarray(prepared.gray), prepared.truth))
                ms = 1000 * (time.perf_counter() - start) / len(photos)
                s = summarize(records)
                rows.append({"hints": n, "sigma": sigma, "pull": pull, "ms_per_photo": round(ms, 1), **s})
                print(f"N={n:<3} sigma={sigma:<4g} pull={pull:<7g} {s['model']['psnr']:.2f} ({s['gray']['psnr']:.2f})  "
                      f"{s['model']['colorfulness']:.1f} ({s['ground_truth']['colorfulness']:.1f})  {ms:.0f} ms",
                      flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps({"weights": args.weights, "photos": len(photos),
                                                           "render_size": colorizer.render_size, "rows": rows},
                                                          indent=1))


if __name__ == "__main__":
    main()
