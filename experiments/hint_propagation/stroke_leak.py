"""A stroke-shaped counter-check of the hint engine's leak: a thick stroke, not a dot, that crosses several regions.

Two measurements per engine setting (two_sided.py's setting syntax):

* the coffee stroke: one green stroke across the coffee in ``examples/coffee.jpg`` (the stroke that, in the app,
  turned the saucer and the cup's inner wall green). Leak: of the pixels whose true ab is more than 20 from the true
  ab of every pixel under the stroke (colours the stroke never touched), the share that moved by more than 5 ab; and
  the mean ab change in the four table corners (40 x 40 px each).
* random strokes: on the selection photos (two_sided.py --selection), one stroke per photo, seeded by its index:
  radius short side / 48, length a third of the short side, a random angle, Lab (55, chroma 60, random hue); the same
  leak (colours no stroke pixel has).

    python experiments/hint_propagation/stroke_leak.py --selection 100 --limit 50 \\
        --settings 3e-05/0.5/1 pull=3e-5,sigma_ab=0.5,sigma=1,grid_xy=16 --json results/strokes.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from colorization.color import lab_to_display, rgb_to_lab
from colorization.hints import LEAK_CHANGE_AB, LEAK_OTHER_AB, hints_at, leak, propagate
from colorization.images import find_images, read_image
from colorization.paths import data_dir
from colorization.pipeline import compose, load_colorizer, prepare, upsample_ab

from two_sided import parse_setting

COFFEE_STROKE = [(225, 135), (290, 150), (360, 140)]  # across the coffee, in examples/coffee.jpg's 600 x 400 pixels
CORNER = 40


def stroke_image(points: list, radius: float, colour: tuple, size: tuple[int, int]) -> Image.Image:
    """An RGBA hint image of ``size`` with one stroke of ``colour`` along ``points``, ``radius`` px thick each side."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.line(points, fill=(*colour, 255), width=int(round(2 * radius)), joint="curve")
    for x, y in points:  # round ends
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(*colour, 255))
    return image


def untouched_colours(truth: np.ndarray, stroke: np.ndarray) -> np.ndarray:
    """Pixels (H, W bool) whose true ab is more than ``LEAK_OTHER_AB`` from the true ab of every stroke pixel."""
    ab = rgb_to_lab(truth[..., :3].astype(np.float32) / 255.0)[..., 1:]
    under = ab[stroke][:: max(1, int(stroke.sum()) // 400)]  # at most ~400 stroke colours
    nearest = np.full(ab.shape[:2], np.inf, np.float32)
    for colour in under:
        nearest = np.minimum(nearest, np.linalg.norm(ab - colour, axis=-1))
    return nearest > LEAK_OTHER_AB


def random_stroke(truth: np.ndarray, seed: int) -> Image.Image:
    """One stroke a user could paint across a photo (H, W, 3): see the module's docstring."""
    h, w = truth.shape[:2]
    rng = np.random.default_rng([seed, 0x57E0])
    radius, length = max(1.0, min(h, w) / 48), min(h, w) / 3
    angle, hue = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    cx, cy = rng.uniform(length / 2, w - length / 2), rng.uniform(length / 2, h - length / 2)
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    lab = np.array([[[55.0, 60.0 * np.cos(hue), 60.0 * np.sin(hue)]]], np.float32)
    colour = tuple(int(c) for c in lab_to_display(lab)[0, 0])
    return stroke_image([(cx - dx, cy - dy), (cx + dx, cy + dy)], radius, colour, (w, h))


class Engine:
    """The network once per photo, the solve once per setting."""

    def __init__(self, colorizer, prepared):
        self.colorizer, self.prepared = colorizer, prepared
        self.l_small = colorizer.l_small(prepared.l)
        self.net = colorizer.predict_ab_from_small(self.l_small)
        self.automatic = self.result(self.net)

    def result(self, ab_small: np.ndarray) -> np.ndarray:
        return np.asarray(compose(self.prepared.l, upsample_ab(ab_small, self.prepared.l.shape)).convert("RGB"))

    def hinted(self, hints: Image.Image, setting: str) -> np.ndarray:
        small = hints_at(hints, self.l_small.shape)
        kw = parse_setting(setting)
        if "embed" in kw:  # learned_affinity.py's embedding, as two_sided.py's "embed=S"
            from learned_affinity import embed, pixel_inputs

            if not hasattr(self, "embedding"):
                self.embedding = embed(pixel_inputs(self.colorizer, self.l_small))
            kw["features"], kw["sigma_features"] = self.embedding, kw.pop("embed")
        return self.result(propagate(self.l_small, self.net, *small, **kw))


def moved(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """|ab change| (H, W) between two RGB uint8 results."""
    lab = [rgb_to_lab(x.astype(np.float32) / 255.0)[..., 1:] for x in (before, after)]
    return np.linalg.norm(lab[1] - lab[0], axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", required=True)
    parser.add_argument("--model", default="weights/cnn.safetensors")
    parser.add_argument("--selection", type=int, default=100)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--figure", help="a PNG of the coffee stroke's result per setting")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    colorizer = load_colorizer(args.model, device="cpu")
    out = {"model": args.model, "settings": {}}

    coffee = Engine(colorizer, prepare(read_image("examples/coffee.jpg")))
    hints = stroke_image(COFFEE_STROKE, 8, (40, 200, 60), (600, 400))
    stroke = np.asarray(hints)[..., 3] > 127
    other = untouched_colours(coffee.prepared.truth, stroke)
    panels = []
    for s in args.settings:
        after = coffee.hinted(hints, s)
        change = moved(coffee.automatic, after)
        corners = np.concatenate([change[:CORNER, :CORNER].ravel(), change[:CORNER, -CORNER:].ravel(),
                                  change[-CORNER:, :CORNER].ravel(), change[-CORNER:, -CORNER:].ravel()])
        out["settings"][s] = {"coffee_leak": float((change[other] > LEAK_CHANGE_AB).mean()),
                              "coffee_corners_ab": float(corners.mean()),
                              "coffee_stroke_ab": float(change[stroke].mean())}
        panels.append(after)
    if args.figure:
        Image.fromarray(np.concatenate(panels, axis=0)).save(args.figure)

    unseen = json.loads(Path("recipes/hints_gpu.json").read_text())["val_data"]
    files = sorted(random.Random(0).sample(find_images([data_dir() / c for c in unseen]), args.selection))[: args.limit]
    leaks = {s: [] for s in args.settings}
    for i, f in enumerate(files):
        engine = Engine(colorizer, prepare(read_image(f)))
        hints = random_stroke(engine.prepared.truth, i)
        other = untouched_colours(engine.prepared.truth, np.asarray(hints)[..., 3] > 127)
        for s in args.settings:
            value = leak(engine.automatic, engine.hinted(hints, s), other)
            if value is not None:
                leaks[s].append(value)
    for s in args.settings:
        out["settings"][s].update(stroke_leak=float(np.mean(leaks[s])), stroke_photos=len(leaks[s]))
        row = out["settings"][s]
        print(f"{s}: coffee leak {100 * row['coffee_leak']:.1f}% corners {row['coffee_corners_ab']:.1f} ab, "
              f"stroke leak {100 * row['stroke_leak']:.1f}% ({row['stroke_photos']} photos)", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
