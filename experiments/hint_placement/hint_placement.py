"""Does a "where to click" overlay place hints better than random? Both sides, paired per photo.

For each photo of the selection (the photos no shipped model trained on, drawn as ``two_sided.py --selection``
draws them) and each placement, 1, 2, 5 and 10 hints with the photo's true colours (only WHERE differs), spread by
the shipped engine (``colorization.hints.propagate`` at its defaults) over ``weights/cnn.safetensors``, the app's
default model. Scores per photo: the PSNR gain over the automatic result, and two counter-scores at the render
size: the share of the photo the hints changed by more than 5 ab ("changed"), and the share they moved more than
5 ab further from the truth ("harmed").

Placements: "random" (``simulated_hints``, seed = the photo's index as ``evaluate --hints N --seed 0``, and two more
draws; the reference is their mean), "spaced" (random scores through the same spaced picker: what spacing alone
buys), and the overlays of ``colorization.placement`` ("entropy", "region" from
``weights/classification.safetensors``; "low_chroma" from the CNN's own prediction).

    python experiments/hint_placement/hint_placement.py --selection 100 \
        --json experiments/hint_placement/results/selection.json
    python experiments/hint_placement/hint_placement.py --time examples/coffee.jpg
    python experiments/hint_placement/hint_placement.py --figure experiments/hint_placement/overlays.jpg
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from colorization.color import rgb_to_lab
from colorization.hints import LEAK_OTHER_AB, hint_image, hints_at, leak, leak_probe, propagate, simulated_hints
from colorization.images import find_images, read_image
from colorization.metrics import image_metrics
from colorization.paths import data_dir
from colorization.pipeline import compose, load_colorizer, prepare, upsample_ab
from colorization.placement import METHODS, Overlay, overlay, pick_points, simulated_hints_at

COUNTS = (1, 2, 5, 10)
RANDOM_DRAWS = 3  # seeds index, index + 1000, index + 2000: the reference is their mean gain
CHANGE_AB = 5.0
LEAK_DOTS = 5  # the leak of a stray colour at each of a placement's first 5 points (random: 5 probes' own points)


def selection(n: int) -> list[Path]:
    """The photos of ``two_sided.py --selection n`` (the hint recipe's val_data, seed 0): kept in its main()."""
    unseen = json.loads(Path("recipes/hints_gpu.json").read_text())["val_data"]
    return sorted(random.Random(0).sample(find_images([data_dir() / c for c in unseen]), n))


def overlays(cnn, classification, l: np.ndarray, index: int, l_small_shape) -> dict[str, Overlay]:
    """Every placement's map from the gray photo (L only); "spaced" is seeded noise."""
    noise = np.random.default_rng([index, 0x5ACE]).random(l_small_shape).astype(np.float32)
    out = {"spaced": Overlay(noise, l.shape)}
    for method in METHODS:
        out[method] = overlay(cnn if method == "low_chroma" else classification, l, method)
    return out


def photo_scores(cnn, classification, prepared, index: int) -> dict:
    truth = prepared.truth
    l_small = cnn.l_small(prepared.l)
    auto_ab = cnn.predict_ab_from_small(l_small)  # the CNN takes no hints: its ab is the same for every hint set
    truth_ab = cv2.resize(rgb_to_lab(truth.astype(np.float32) / 255)[..., 1:], l_small.shape[::-1],
                          interpolation=cv2.INTER_AREA)
    auto_error = np.linalg.norm(auto_ab - truth_ab, axis=-1)

    def psnr(ab_small) -> float:
        rgb = np.asarray(compose(prepared.l, upsample_ab(ab_small, prepared.l.shape)).convert("RGB"))
        return image_metrics(rgb, truth)["psnr"]

    def scores(hint_image) -> dict:
        ab = propagate(l_small, auto_ab, *hints_at(hint_image, l_small.shape))
        error = np.linalg.norm(ab - truth_ab, axis=-1)
        return {"gain": psnr(ab) - automatic,
                "changed": float((np.linalg.norm(ab - auto_ab, axis=-1) > CHANGE_AB).mean()),
                "harmed": float((error - auto_error > CHANGE_AB).mean())}

    def rgb(hint_image) -> np.ndarray:
        ab = propagate(l_small, auto_ab, *hints_at(hint_image, l_small.shape))
        return np.asarray(compose(prepared.l, upsample_ab(ab, prepared.l.shape)).convert("RGB"))

    def leak_at(points) -> float:
        """The two-sided protocol's leak (a dot of a random saturated colour: ``leak_probe``) at each point, or at
        the probes' own random points (None), averaged."""
        leaks = []
        for k, point in enumerate(points):
            dot, other = leak_probe(truth, index + 1000 * k)
            if point is not None:  # the probe's colour and radius at the placement's point
                rgba = np.asarray(dot)
                colour, radius = rgba[rgba[..., 3] > 127][0, :3], max(1, round(min(truth.shape[:2]) / 64))
                dot = hint_image([(point[0], point[1], colour, radius)], truth.shape[1::-1])
                under = np.asarray(dot)[..., 3] > 127
                other = np.linalg.norm(truth_lab_ab - truth_lab_ab[under].mean(axis=0), axis=-1) > LEAK_OTHER_AB
            leaks.append(leak(automatic_rgb, rgb(dot), other))
        leaks = [v for v in leaks if v is not None]
        return float(np.mean(leaks)) if leaks else None

    truth_lab_ab = rgb_to_lab(truth.astype(np.float32) / 255)[..., 1:]
    automatic = psnr(auto_ab)
    automatic_rgb = np.asarray(compose(prepared.l, upsample_ab(auto_ab, prepared.l.shape)).convert("RGB"))
    record = {"automatic": automatic, "placements": {}, "leak": {"random": leak_at([None] * LEAK_DOTS)}}
    for draw in range(RANDOM_DRAWS):
        record["placements"][f"random{draw}"] = {
            str(n): scores(simulated_hints(truth, n, index + 1000 * draw)) for n in COUNTS}
    for name, over in overlays(cnn, classification, prepared.l, index, l_small.shape).items():
        points = pick_points(over, max(COUNTS))  # greedy: the first n of 10 are the points for n
        record["placements"][name] = {str(n): scores(simulated_hints_at(truth, points[:n])) for n in COUNTS}
        record["leak"][name] = leak_at(points[:LEAK_DOTS])
    return record


def paired(diff: np.ndarray, seed: int = 0, resamples: int = 10000) -> dict:
    """Mean of the per-photo differences, its bootstrap 95 % interval, wins/losses and the sign test's p."""
    from scipy.stats import binomtest

    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    return {"mean": float(diff.mean()), "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
            "wins": wins, "losses": losses, "sign_p": float(p)}


def summarise(records: list[dict]) -> dict:
    names = list(records[0]["placements"])
    out = {"photos": len(records), "automatic": float(np.mean([r["automatic"] for r in records]))}

    def per_photo(name: str, n: int, key: str) -> np.ndarray:
        if name == "random":
            return np.mean([per_photo(f"random{d}", n, key) for d in range(RANDOM_DRAWS)], axis=0)
        return np.array([r["placements"][name][str(n)][key] for r in records])

    # The leak of a stray colour at the placement's points, against the probes' own random points; per photo with
    # both measured (a photo of one colour has no other region to leak into).
    out["leak"] = {}
    for name in records[0]["leak"]:
        both = [r for r in records if r["leak"][name] is not None and r["leak"]["random"] is not None]
        mine, theirs = (np.array([r["leak"][key] for r in both]) for key in (name, "random"))
        out["leak"][name] = {"mean": float(mine.mean()), "photos": len(both),
                             **({} if name == "random" else {"minus_random": paired(mine - theirs)})}
    for name in ["random"] + [m for m in names if not m.startswith("random")] + ["random0"]:
        out[name] = {}
        for n in COUNTS:
            row = {key: float(per_photo(name, n, key).mean()) for key in ("gain", "changed", "harmed")}
            if name != "random":
                row["vs_random"] = paired(per_photo(name, n, "gain") - per_photo("random", n, "gain"))
                harmed = per_photo(name, n, "harmed") - per_photo("random", n, "harmed")
                row["harmed_vs_random"] = float(harmed.mean())
            if name in METHODS:  # does the map matter, or only the spacing?
                row["vs_spaced"] = paired(per_photo(name, n, "gain") - per_photo("spaced", n, "gain"))
            out[name][str(n)] = row
    return out


def time_overlays(photo: str, repeats: int, threads: int) -> dict:
    """Median ms per overlay plus 10 points on ``photo`` resized to 1024 x 768 (the benchmark's size)."""
    torch.set_num_threads(threads)
    image = read_image(photo).convert("RGB").resize((1024, 768))
    l = prepare(image).l
    colorizers = {"classification": load_colorizer("weights/classification.safetensors", device="cpu"),
                  "cnn": load_colorizer("weights/cnn.safetensors", device="cpu")}
    out = {}
    for method in METHODS:
        colorizer = colorizers["cnn" if method == "low_chroma" else "classification"]
        pick_points(overlay(colorizer, l, method), 10)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            pick_points(overlay(colorizer, l, method), 10)
            times.append(1000 * (time.perf_counter() - t))
        out[method] = {"median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1)}
    return out


def figure(out: str, photos: int = 4) -> None:
    """Per selection photo: the gray photo with 5 random hints, then each overlay with its 5 points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cnn = load_colorizer("weights/cnn.safetensors", device="cpu")
    classification = load_colorizer("weights/classification.safetensors", device="cpu")
    files = selection(100)[:photos]
    columns = ["random"] + list(METHODS)
    fig, axes = plt.subplots(len(files), len(columns), figsize=(3 * len(columns), 2.6 * len(files)), squeeze=False)
    for row, (index, file) in enumerate(zip(range(len(files)), files)):
        prepared = prepare(read_image(file))
        maps = overlays(cnn, classification, prepared.l, index, cnn.l_small(prepared.l).shape)
        hints = np.asarray(simulated_hints(prepared.truth, 5, index))
        for col, name in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(prepared.l, cmap="gray", vmin=0, vmax=100)
            if name == "random":
                ys, xs = np.nonzero(hints[..., 3])
                ax.scatter(xs, ys, s=1, c="red")
            else:
                ax.imshow(maps[name].at_photo_size(), cmap="magma", alpha=0.55, vmin=0, vmax=1)
                points = np.array(pick_points(maps[name], 5))
                ax.scatter(points[:, 0], points[:, 1], s=30, facecolors="none", edgecolors="cyan")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(name)
    fig.tight_layout()
    fig.savefig(out, dpi=70, pil_kwargs={"quality": 80} if out.endswith(".jpg") else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--selection", type=int, default=100, help="photos of the unseen collections (seed 0)")
    parser.add_argument("--json", help="results (per-photo records checkpointed beside it, resumable)")
    parser.add_argument("--time", metavar="PHOTO", help="instead: time each overlay on PHOTO at 1024 x 768")
    parser.add_argument("--figure", metavar="PNG", help="instead: draw the overlays and 5 points on 4 photos")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.figure:
        figure(args.figure)
        return
    if args.time:
        print(json.dumps(time_overlays(args.time, args.repeats, args.threads)))
        return
    if not args.json:
        parser.error("--json is needed (or --time)")
    torch.set_num_threads(args.threads)
    path = Path(args.json)
    records_path = path.with_suffix(".records.json")
    records = json.loads(records_path.read_text()) if records_path.exists() else []
    cnn = load_colorizer("weights/cnn.safetensors", device="cpu")
    classification = load_colorizer("weights/classification.safetensors", device="cpu")
    files = selection(args.selection)
    t = time.perf_counter()
    for index in range(len(records), len(files)):
        records.append(photo_scores(cnn, classification, prepare(read_image(files[index])), index))
        records_path.parent.mkdir(parents=True, exist_ok=True)
        records_path.write_text(json.dumps(records))
        print(index, files[index].name, f"{time.perf_counter() - t:.0f} s", flush=True)
    summary = {"model": "weights/cnn.safetensors", "overlay_model": "weights/classification.safetensors",
               "render_size": cnn.render_size, **summarise(records)}
    path.write_text(json.dumps(summary, indent=1))
    for name in summary:
        if isinstance(summary[name], dict) and "10" in summary[name]:
            print(f"{name:>10}", *(f"{n}: {summary[name][str(n)]['gain']:+.2f} dB "
                                   f"harm {100 * summary[name][str(n)]['harmed']:.1f}%" for n in COUNTS))


if __name__ == "__main__":
    main()
