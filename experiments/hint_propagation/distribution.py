"""The classification model's colour distribution as a guide for the hint engine, measured on both sides.

The engine's colours stay the CNN's (``weights/cnn.safetensors``); the classification model
(``weights/classification.safetensors``) runs on the same L at the same render size and gives each pixel a
distribution over ab bins (softmax of logits / its temperature, as ``suggested_colours`` reads it), read as a density
p_i(ab) = sum_q P_iq exp(-|ab - bin_q|^2 / 2 s^2) (s = 7.5 ab, suggested_colours' smoothing). Two ways to use it,
as extra keys of two_sided.py's "key=value,..." settings (the other keys go to ``propagate``):

* ``gate=G``: plausibility gating. After the solve each pixel keeps the share min(1, p_i(corrected) / p_i(network))^G
  of its correction (``gatefloor=F``: at least F; ``keep=1``: hinted pixels keep all of theirs; ``gateblur=B``: the
  gate blurred, Gaussian sigma B px). A colour a pixel could not be is refused there. ``gatemode=M``: the ratio is
  taken to M times the pixel's likeliest colour's density instead (a colour at least M as likely as the pixel's mode
  passes whole); ``gatetemp=T``: the distribution at temperature T for the gate (1: the model's raw, flatter one).
* ``dist=S``: distribution affinities. sqrt(P) (so |f_i - f_j|^2 = 2 - 2 Bhattacharyya coefficient), smoothed over
  the bins, reduced to its first ``distpca=D`` principal components (default 8), joins the affinity as ``features``
  with ``sigma_features=S`` (and KNN links' space, with ``knn=...``; on propagate's smaller copy, ``max_pixels``,
  at most 4 components: OpenCV's INTER_AREA refuses more channels at a non-integer scale).

Per photo of the 100 selection photos (two_sided.py --selection, seed = the photo's index): the gain at 10 hints and
the dot's leak (two_sided.py's protocol), and on the first 50 the random stroke's leak (stroke_leak.py's protocol);
the coffee stroke once (``--coffee-only``: that alone). The counter-scores of the gate, whether it refuses a user's
colour where it was painted: the mean ab distance from the hint colour over the dot's and the stroke's own pixels
("on dot", "on stroke"), and the share of the dot's (the coffee stroke's) own colour (true ab within 20 of the truth
under it, off it) that moved more than 5 ab ("fill": what a hint should reach).

    python experiments/hint_propagation/distribution.py --limit 30 --settings 3e-05/0.5/1 \\
        pull=3e-5,sigma_ab=0.5,sigma=1,gate=1,keep=1 pull=5e-6,sigma_ab=0.5,sigma=1,dist=0.02 \\
        pull=5e-5,sigma_ab=0.5,sigma=1,max_pixels=8192,knn=10,knn_xy=8,knn_weight=0.02,dist=0.03,distpca=4 \\
        --json experiments/hint_propagation/results/distribution_screen.json
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
from colorization.hints import LEAK_CHANGE_AB, hints_at, leak, leak_probe, propagate, simulated_hints
from colorization.images import read_image
from colorization.metrics import image_metrics
from colorization.pipeline import compose, load_colorizer, prepare, upsample_ab

from stroke_leak import COFFEE_STROKE, moved, random_stroke, stroke_image, untouched_colours
from two_sided import parse_setting, photo_files, summarise

OWN_KEYS = ("gate", "gatefloor", "keep", "gateblur", "gatemode", "gatetemp", "dist", "distpca")
KERNEL_AB = 7.5  # the density's smoothing over the bins, in ab units: suggested_colours' spacing / 2
STROKE_PHOTOS = 50  # stroke_leak.py's --limit, so its numbers compare


class Distribution:
    """The classification model's per-pixel distribution (h, w, Q) at the CNN's render size, and its density."""

    def __init__(self, classifier, l_small: np.ndarray):
        model = classifier.model
        with torch.inference_mode():
            self.logits = model(torch.from_numpy(l_small)[None, None], raw=True)[0].float()  # (Q, h, w)
        self._at: dict = {}
        self._peak: dict = {}
        self._features: dict = {}
        self.probs = self.at(model.temperature)  # (h, w, Q)
        self.bins = model.ab_bins.float().numpy()  # (Q, 2)

    def at(self, temperature: float) -> np.ndarray:
        """The distribution (h, w, Q) at ``temperature``."""
        if temperature not in self._at:
            self._at[temperature] = torch.softmax(self.logits / temperature, dim=0).permute(1, 2, 0).numpy()
        return self._at[temperature]

    def density(self, ab: np.ndarray, temperature: float = 0.0) -> np.ndarray:
        """p_i(ab_i) (h, w) for one colour per pixel (h, w, 2); ``temperature`` 0: the model's."""
        probs = self.at(temperature) if temperature else self.probs
        d2 = ((ab[..., None, :] - self.bins) ** 2).sum(-1)  # (h, w, Q)
        return (probs * np.exp(-d2 / (2 * KERNEL_AB ** 2))).sum(-1)

    def peak(self, temperature: float = 0.0) -> np.ndarray:
        """The density (h, w) at each pixel's likeliest bin."""
        if temperature not in self._peak:
            probs = self.at(temperature) if temperature else self.probs
            d2 = ((self.bins[:, None] - self.bins[None]) ** 2).sum(-1)
            self._peak[temperature] = (probs @ np.exp(-d2 / (2 * KERNEL_AB ** 2))).max(-1)
        return self._peak[temperature]

    def features(self, components: int) -> np.ndarray:
        """sqrt of the bin-smoothed distribution, its first ``components`` principal components (h, w, D)."""
        if components not in self._features:
            h, w, q = self.probs.shape
            d2 = ((self.bins[:, None] - self.bins[None]) ** 2).sum(-1)
            smoothed = self.probs.reshape(-1, q) @ np.exp(-d2 / (2 * KERNEL_AB ** 2)).T
            root = np.sqrt(smoothed / smoothed.sum(1, keepdims=True))
            centred = root - root.mean(axis=0)
            _, _, vt = np.linalg.svd(centred[:: max(1, len(root) // 4000)], full_matrices=False)
            self._features[components] = (centred @ vt[:components].T).reshape(h, w, -1).astype(np.float32)
        return self._features[components]


def engine(l_small, net, small, setting: dict, dist: Distribution) -> np.ndarray:
    """propagate with the setting's keywords, guided by the distribution (see the module's docstring)."""
    kw = {k: v for k, v in setting.items() if k not in OWN_KEYS}
    if setting.get("dist"):
        kw["features"], kw["sigma_features"] = dist.features(int(setting.get("distpca", 8))), setting["dist"]
    ab = propagate(l_small, net, *small, **kw)
    if not setting.get("gate"):
        return ab
    t = setting.get("gatetemp", 0.0)
    reference = setting["gatemode"] * dist.peak(t) if setting.get("gatemode") else dist.density(net, t)
    ratio = dist.density(ab, t) / np.maximum(reference, 1e-12)
    gate = np.clip(ratio, 0.0, 1.0) ** setting["gate"]
    if setting.get("gateblur"):
        gate = cv2.GaussianBlur(gate.astype(np.float32), (0, 0), setting["gateblur"])
    gate = np.maximum(gate, setting.get("gatefloor", 0.0))
    if setting.get("keep"):
        gate = np.maximum(gate, small[1])
    return (net + gate[..., None] * (ab - net)).astype(np.float32)


def hint_ab(hints) -> tuple[np.ndarray, np.ndarray]:
    """A hint image's opaque pixels (H, W bool) and their ab (n, 2)."""
    rgba = np.asarray(hints)
    opaque = rgba[..., 3] > 127
    return opaque, rgb_to_lab(rgba[opaque][:, :3].astype(np.float32) / 255.0)[:, 1:]


def on_hint(result: np.ndarray, hints) -> float:
    """Mean ab distance from the hint colour over the hint's own pixels: is the user's colour where it was painted?"""
    opaque, wanted = hint_ab(hints)
    ab = rgb_to_lab(result.astype(np.float32) / 255.0)[..., 1:]
    return float(np.linalg.norm(ab[opaque] - wanted, axis=-1).mean())


def photo_scores(cnn, classifier, prepared, index: int, settings: dict, stroke: bool) -> dict:
    l_small = cnn.l_small(prepared.l)
    net = cnn.predict_ab_from_small(l_small)
    dist = Distribution(classifier, l_small)

    def result(ab_small):
        return np.asarray(compose(prepared.l, upsample_ab(ab_small, prepared.l.shape)).convert("RGB"))

    def hinted(hints):
        small = hints_at(hints, l_small.shape)
        return {s: result(engine(l_small, net, small, kw, dist)) for s, kw in settings.items()}

    automatic = result(net)
    record = {"automatic": image_metrics(automatic, prepared.truth)["psnr"], "settings": {}}
    dot, other = leak_probe(prepared.truth, index)
    dot_pixels = hint_ab(dot)[0]
    own = ~other & ~dot_pixels
    dotted = hinted(dot)
    ten = hinted(simulated_hints(prepared.truth, 10, index))
    if stroke:
        lines = random_stroke(prepared.truth, index)
        untouched = untouched_colours(prepared.truth, hint_ab(lines)[0])
        stroked = hinted(lines)
    for s in settings:
        row = {"leak": leak(automatic, dotted[s], other), "10": image_metrics(ten[s], prepared.truth)["psnr"],
               "on_dot": on_hint(dotted[s], dot),
               "fill": float((moved(automatic, dotted[s])[own] > LEAK_CHANGE_AB).mean()) if own.any() else None}
        if stroke:
            row.update(stroke_leak=leak(automatic, stroked[s], untouched), on_stroke=on_hint(stroked[s], lines))
        record["settings"][s] = row
    return record


def coffee_scores(cnn, classifier, settings: dict) -> dict:
    """The issue's coffee stroke (stroke_leak.py's): its leak, the on-stroke distance and the fill (the share of the
    stroke's own colours off the stroke that moved more than 5 ab)."""
    prepared = prepare(read_image("examples/coffee.jpg"))
    l_small = cnn.l_small(prepared.l)
    net = cnn.predict_ab_from_small(l_small)
    dist = Distribution(classifier, l_small)
    hints = stroke_image(COFFEE_STROKE, 8, (40, 200, 60), (600, 400))
    small = hints_at(hints, l_small.shape)
    other = untouched_colours(prepared.truth, hint_ab(hints)[0])
    own = ~other & ~hint_ab(hints)[0]  # the coffee's own colours off the stroke, which it should reach
    automatic = np.asarray(compose(prepared.l, upsample_ab(net, prepared.l.shape)).convert("RGB"))
    out = {}
    for s, kw in settings.items():
        after = np.asarray(compose(prepared.l, upsample_ab(engine(l_small, net, small, kw, dist),
                                                           prepared.l.shape)).convert("RGB"))
        out[s] = {"coffee_leak": leak(automatic, after, other), "coffee_on_stroke": on_hint(after, hints),
                  "coffee_fill": float((moved(automatic, after)[own] > LEAK_CHANGE_AB).mean())}
    return out


def mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", required=True)
    parser.add_argument("--selection", type=int, default=100)
    parser.add_argument("--limit", type=int, default=100, help="the first this many of the selection photos")
    parser.add_argument("--coffee-only", action="store_true", help="only the coffee stroke")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cnn = load_colorizer("weights/cnn.safetensors", device="cpu")
    classifier = load_colorizer("weights/classification.safetensors", device="cpu")
    settings = {s: parse_setting(s) for s in args.settings}
    if args.coffee_only:
        coffee = coffee_scores(cnn, classifier, settings)
        Path(args.json).write_text(json.dumps(coffee, indent=1))
        for s, row in coffee.items():
            print(s, *(f"{k} {v:.3f}" for k, v in row.items()))
        return
    path = Path(args.json)
    saved = json.loads(path.read_text()) if path.exists() else {}
    records = saved.get("records", []) if saved.get("setting_list") == args.settings else []  # resumable
    files = photo_files("", args.selection, args.limit)
    coffee = saved.get("coffee") if records else None
    coffee = coffee or coffee_scores(cnn, classifier, settings)
    t = time.perf_counter()
    for i, f in enumerate(files):
        if i < len(records):
            continue
        records.append(photo_scores(cnn, classifier, prepare(read_image(f)), i, settings, i < STROKE_PHOTOS))
        if (i + 1) % 10 == 0 or i + 1 == len(files):
            summary = summarise(records, args.settings, (10,))
            for s in args.settings:
                rows = [r["settings"][s] for r in records]
                summary[s].update({k: mean(r.get(k) for r in rows)
                                   for k in ("stroke_leak", "on_dot", "fill", "on_stroke")}, **coffee[s])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"setting_list": args.settings, "summary": summary, "coffee": coffee,
                                        "seconds": round(time.perf_counter() - t, 1), "records": records}, indent=1))
            print(f"{i + 1} photos ({time.perf_counter() - t:.0f} s)", flush=True)
    summary = json.loads(path.read_text())["summary"]
    print(f"{'setting':60s} gain10 dot% stroke% coffee% on_dot on_stroke coffee_on fill%")
    for s in args.settings:
        r = summary[s]
        print(f"{s:60s} {r['gain_10']:+.2f} {100 * r['leak']:5.1f} {100 * r['stroke_leak']:5.1f} "
              f"{100 * r['coffee_leak']:5.1f} {r['on_dot']:6.1f} {r['on_stroke']:6.1f} {r['coffee_on_stroke']:6.1f} "
              f"{100 * r['fill']:5.1f}")


if __name__ == "__main__":
    main()
