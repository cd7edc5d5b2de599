"""How much can ANY propagation gain at no leak? An oracle that knows the true colours, against the hint target.

The hint issue asks for at least +3.5 dB at 10 hints with at most 10 % leak. An engine that spreads hints can, at no
leak, at best give each hint's colour to every pixel of the same true colour (its true ab within ``--tolerance`` of
the true ab under the hint, the leak's own threshold), wherever it lies in the photo, and leave every other pixel to
the network. This script measures that oracle, with the protocol of ``two_sided.py`` (the same photos, simulated
hints, seeds, render size and full-resolution PSNR), in two forms:

- "colour": such a pixel takes the hint's colour;
- "residual": such a pixel takes the network's colour plus the hint's correction at the hint (what
  ``colorization.hints.propagate`` spreads);
- "connected": as "colour", but only the pixels joined to the hint through pixels of its colour (one region, as a
  neighbour solve reaches; "colour" also reaches the same colour elsewhere, as non-local links would).

Both read the truth at every pixel, which no engine can: their gain bounds from above what an engine confined to
regions of its hint's true colour can reach. If the bound is under the target, the target needs more than
propagation (a network that learns from hints what else to change).

    python experiments/hint_propagation/oracle.py --selection 100 --json experiments/hint_propagation/results/oracle.json
    python experiments/hint_propagation/oracle.py --json experiments/hint_propagation/results/oracle.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from colorization.color import rgb_to_lab
from colorization.hints import hints_at, simulated_hints
from colorization.images import read_image
from colorization.metrics import image_metrics
from colorization.paths import EVAL_FOLDERS
from colorization.pipeline import compose, load_colorizer, prepare, upsample_ab

from two_sided import photo_files


def oracle_ab(net: np.ndarray, truth_ab: np.ndarray, hint_ab: np.ndarray, weight: np.ndarray, tolerance: float,
              form: str) -> np.ndarray:
    """The network's ab (h, w, 2) with each hint given to every pixel whose true ab lies within ``tolerance`` of the
    true ab under the hint (the nearest such hint when several qualify)."""
    count, labels = cv2.connectedComponents((weight > 0).astype(np.uint8))
    out, best = net.copy(), np.full(net.shape[:2], np.inf)
    for k in range(1, count):
        under = labels == k
        true_here = truth_ab[under].mean(axis=0)
        colour = hint_ab[under].mean(axis=0)
        distance = np.linalg.norm(truth_ab - true_here, axis=-1)
        take = distance <= tolerance
        if form == "connected":
            _, regions = cv2.connectedComponents(take.astype(np.uint8))
            take = np.isin(regions, np.unique(regions[under & take]))
        take &= distance < best
        best[take] = distance[take]
        out[take] = net[take] + (colour - net[under].mean(axis=0)) if form == "residual" else colour
    return out


def photo_scores(colorizer, prepared, index: int, counts: list[int], tolerance: float) -> dict:
    l_small = colorizer.l_small(prepared.l)
    h, w = l_small.shape
    truth_ab = rgb_to_lab(cv2.resize(prepared.truth, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
                          / 255)[..., 1:]

    def psnr(ab_small):
        rgb = np.asarray(compose(prepared.l, upsample_ab(ab_small, prepared.l.shape)).convert("RGB"))
        return image_metrics(rgb, prepared.truth)["psnr"]

    net = colorizer.predict_ab_from_small(l_small)
    record = {"automatic": psnr(net)}
    for n in counts:
        hint_ab, weight = hints_at(simulated_hints(prepared.truth, n, index), (h, w))
        for form in ("colour", "residual", "connected"):
            record[f"{form}_{n}"] = psnr(oracle_ab(net, truth_ab, hint_ab, weight, tolerance, form))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="weights/cnn.safetensors")
    parser.add_argument("--folders", nargs="+", default=list(EVAL_FOLDERS))
    parser.add_argument("--limit", type=int, default=100, help="photos per folder at most (the first ones)")
    parser.add_argument("--selection", type=int, default=0, help="two_sided.py's selection photos instead")
    parser.add_argument("--counts", nargs="+", type=int, default=[2, 10, 20])
    parser.add_argument("--tolerance", type=float, default=20.0, help="ab units: the leak's own threshold")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}  # resumable: finished folders are kept
    colorizer = load_colorizer(args.model, device="cpu")
    for folder in (["selection"] if args.selection else args.folders):
        key = f"{Path(args.model).stem}/{folder}/tolerance {args.tolerance:g}"
        if key in results:
            continue
        files = photo_files(folder, args.selection, args.limit)
        t = time.perf_counter()
        records = [photo_scores(colorizer, prepare(read_image(f)), i, args.counts, args.tolerance)
                   for i, f in enumerate(files)]
        automatic = float(np.mean([r["automatic"] for r in records]))
        results[key] = {"photos": len(records), "render_size": colorizer.render_size, "automatic": automatic,
                        "seconds": round(time.perf_counter() - t, 1),
                        **{k: float(np.mean([r[k] for r in records])) - automatic
                           for k in records[0] if k != "automatic"}}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(key, {k: round(v, 2) if isinstance(v, float) else v for k, v in results[key].items()}, flush=True)


if __name__ == "__main__":
    main()
