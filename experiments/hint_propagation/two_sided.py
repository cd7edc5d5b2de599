"""Both sides of the hint protocol, for engine settings and for hint networks, on any set of photos.

For each photo and model: the automatic result, and for each setting the leak of one dot
(``colorization.hints.leak_probe``) and the PSNR at 1, 2, 5, 10 and 20 hints (``simulated_hints``, seed = the photo's
index, as ``evaluate --hints N --seed 0``). A setting is "none" (the network alone: a hint network's own answer) or
the engine after the network: "pull" (L's edges alone), "pull/sigma_ab" (the network's ab edges too) or
"pull/sigma_ab/sigma", or any of propagate's keywords as "key=value,key=value" (for instance
"pull=3e-5,sigma_ab=0.5,knn=10,knn_weight=0.1"); "feat=S" adds the network's own encoder features (strides 8 and 16,
bilinear at the render size, as colorization.reference takes them) with scale S, "featpca=D" keeps their first D
principal components, "gridfeat=C" adds them to the bilateral grid (grid_xy=...) in cells of C; "embed=S" adds
learned_affinity.py's learned embedding instead, with scale S. The network runs once per hint set and only the solve is repeated per setting: the
pipeline's numbers at a fraction of the time.

    python experiments/hint_propagation/two_sided.py --models weights/cnn.safetensors --selection 100 \
        --settings 1e-3 5e-4/0.3 --json experiments/hint_propagation/results/selection.json
    python experiments/hint_propagation/two_sided.py --models weights/cnn.safetensors runs/gpu5/hints_gpu.safetensors \
        --json experiments/hint_propagation/results/two_sided_eval.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from colorization.hints import hints_at, leak, leak_probe, propagate, simulated_hints
from colorization.images import find_images, read_image
from colorization.metrics import image_metrics
from colorization.paths import EVAL_FOLDERS, data_dir
from colorization.pipeline import compose, load_colorizer, prepare, upsample_ab

COUNTS = (1, 2, 5, 10, 20)
_INTEGERS = {"knn", "featpca", "grid_reach", "max_pixels"}


def parse_setting(setting: str) -> dict:
    """propagate's keywords for a setting: "pull[/sigma_ab[/sigma]]" or "key=value,key=value" (see above)."""
    # A uniform pull unless the setting names a geodesic: every run recorded before it became propagate's default
    # (2026-12-05) reproduces with the same setting string.
    if "=" in setting:
        pairs = dict(item.split("=") for item in setting.split(","))
        return {"geodesic": None,
                **{k: (int(v) if k in _INTEGERS else None if v == "none" else float(v)) for k, v in pairs.items()}}
    pull, sigma_ab, sigma = (setting.split("/") + ["", ""])[:3]
    return {"pull": float(pull), "sigma_ab": float(sigma_ab) if sigma_ab else None, "geodesic": None,
            **({"sigma": float(sigma)} if sigma else {})}


def network_features(colorizer, l_small: np.ndarray, components: int = 0) -> np.ndarray:
    """The network's encoder features (h, w, c) at the render size, unit length; ``components`` > 0: their first
    principal components (a KNN search in 152 dimensions is slow), rescaled to keep the total variance."""
    from colorization.reference import _cell_features

    h, w = l_small.shape
    f = _cell_features(colorizer.model, l_small, 1).numpy().astype(np.float32)  # (h * w, c)
    if components:
        centred = f - f.mean(axis=0)
        _, _, vt = np.linalg.svd(centred[:: max(1, len(f) // 4000)], full_matrices=False)
        f = centred @ vt[:components].T
    return f.reshape(h, w, -1)


def photo_scores(colorizer, prepared, index: int, settings: list[str], counts=COUNTS) -> dict:
    l_small = colorizer.l_small(prepared.l)
    parsed = {s: parse_setting(s) for s in settings if s != "none"}
    features = {}
    for kw in parsed.values():
        if ("feat" in kw or "gridfeat" in kw) and kw.get("featpca", 0) not in features:
            features[kw.get("featpca", 0)] = network_features(colorizer, l_small, kw.get("featpca", 0))
        if "embed" in kw and "embed" not in features:
            from learned_affinity import embed, pixel_inputs

            features["embed"] = embed(pixel_inputs(colorizer, l_small))

    def result(ab_small):
        return np.asarray(compose(prepared.l, upsample_ab(ab_small, prepared.l.shape)).convert("RGB"))

    def engine(net, small, setting: str):
        if setting == "none":
            return net
        kw = dict(parsed[setting])
        if "feat" in kw or "gridfeat" in kw:
            kw["features"] = features[kw.pop("featpca", 0)]
            kw["sigma_features"], kw["grid_features"] = kw.pop("feat", None), kw.pop("gridfeat", None)
        if "embed" in kw:
            kw["features"], kw["sigma_features"] = features["embed"], kw.pop("embed")
        return propagate(l_small, net, *small, **kw)

    def hinted(hint_image):
        small = hints_at(hint_image, l_small.shape)
        net = colorizer.predict_ab_from_small(l_small, small)
        return {s: result(engine(net, small, s)) for s in settings}

    automatic = result(colorizer.predict_ab_from_small(l_small))
    record = {"automatic": image_metrics(automatic, prepared.truth)["psnr"], "settings": {}}
    dot, other = leak_probe(prepared.truth, index)
    dotted = hinted(dot)
    per_count = {n: hinted(simulated_hints(prepared.truth, n, index)) for n in counts}
    for s in settings:
        record["settings"][s] = {"leak": leak(automatic, dotted[s], other),
                                 **{str(n): image_metrics(per_count[n][s], prepared.truth)["psnr"] for n in counts}}
    return record


def summarise(records: list[dict], settings: list[str], counts=COUNTS) -> dict:
    automatic = float(np.mean([r["automatic"] for r in records]))
    out = {"photos": len(records), "automatic": automatic}
    for s in settings:
        leaks = [r["settings"][s]["leak"] for r in records if r["settings"][s]["leak"] is not None]
        out[s] = {"leak": float(np.mean(leaks)), "leak_photos": len(leaks),
                  **{f"gain_{n}": float(np.mean([r["settings"][s][str(n)] for r in records])) - automatic
                     for n in counts}}
    return out


def photo_files(folder: str, selection: int, limit: int) -> list[Path]:
    """The first ``limit`` photos of an evaluation folder or, with ``selection``, of that many photos drawn (seed 0)
    from the collections no network here trained on (the hint recipe's val_data)."""
    if selection:
        unseen = json.loads(Path("recipes/hints_gpu.json").read_text())["val_data"]
        return sorted(random.Random(0).sample(find_images([data_dir() / c for c in unseen]), selection))[:limit]
    return find_images([data_dir() / "eval" / folder])[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--settings", nargs="+", default=["none", "3e-05", "0.001", "0.01"],
                        help="'none' (the network alone) or the engine's pull after the network")
    parser.add_argument("--folders", nargs="+", default=list(EVAL_FOLDERS))
    parser.add_argument("--limit", type=int, default=100, help="photos per folder at most (the first ones)")
    parser.add_argument("--selection", type=int, default=0,
                        help="instead of the evaluation folders: this many photos (seeded) of the collections "
                             "no network here trained on (the hint recipe's val_data), to choose settings on")
    parser.add_argument("--counts", nargs="+", type=int, default=list(COUNTS), help="hint counts to score")
    parser.add_argument("--records", action="store_true", help="keep each photo's scores too (for paired tests)")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}  # resumable: finished parts are kept
    for model in args.models:
        colorizer = load_colorizer(model, device="cpu")
        for folder in (["selection"] if args.selection else args.folders):
            key = f"{Path(model).stem}/{folder}"
            if key in results:
                continue
            files = photo_files(folder, args.selection, args.limit)
            t = time.perf_counter()
            records = [photo_scores(colorizer, prepare(read_image(f)), i, args.settings, args.counts)
                       for i, f in enumerate(files)]
            results[key] = {"model": model, "render_size": colorizer.render_size,
                            "seconds": round(time.perf_counter() - t, 1),
                            **summarise(records, args.settings, args.counts),
                            **({"records": records} if args.records else {})}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=1))
            row = results[key]
            top = max(args.counts)
            print(key, f"auto {row['automatic']:.2f}", *(f"\n  {s}: gain{top} {row[s][f'gain_{top}']:+.2f} leak "
                                                          f"{100 * row[s]['leak']:.1f}%" for s in args.settings),
                  flush=True)


if __name__ == "__main__":
    main()
