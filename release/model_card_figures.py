"""The model card's figures: training curves per run, and a gray / models / truth grid.

    python release/model_card_figures.py --curves cnn=weights/logs/cnn.jsonl ... \
        --grid weights/cnn.safetensors weights/gan.safetensors --out weights

The grid uses the colour photos in ``examples/`` (scikit-image's sample data, free to share and not
in the training set); the evaluation photos' terms do not allow redistributing them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from colorization.paths import examples_dir
from colorization.pipeline import load_colorizer
from colorization.plots import comparison_grid, plot_training_log

EXAMPLES = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", nargs="*", default=[], metavar="NAME=LOG", help="plot LOG as NAME_curves.png")
    parser.add_argument("--grid", nargs="*", default=[], metavar="WEIGHTS", help="models for the examples grid")
    parser.add_argument("--grid-name", default="examples.jpg")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for item in args.curves:
        name, log = item.split("=", 1)
        plot_training_log(log, out / f"{name}_curves.png", name)
        print(f"wrote {out / f'{name}_curves.png'}")
    if args.grid:
        colorizers = [load_colorizer(w, device="cpu") for w in args.grid]
        grid = comparison_grid(colorizers, [examples_dir() / name for name in EXAMPLES], tile=280)
        grid.save(out / args.grid_name, quality=88)
        print(f"wrote {out / args.grid_name}: columns gray, {', '.join(c.title for c in colorizers)}, original")


if __name__ == "__main__":
    main()
