"""The live preview's time (``serving.live_preview``, as ``bench/benchmark.py latency`` times it: a 1024 x 768 coffee
photo, ten discs) for several engine settings, interleaved run by run so that a loaded machine loads them alike.

    python experiments/hint_propagation/live_timing.py --runs 20 --settings 3e-05/0.5/1 \\
        pull=3e-5,sigma_ab=0.5,sigma=1,grid_xy=12
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorization import hints
from colorization.hints import hint_image
from colorization.pipeline import load_colorizer
from colorization.serving import live_preview

from two_sided import parse_setting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from skimage import data

    torch.set_num_threads(args.threads)
    colorizer = load_colorizer("weights/cnn.safetensors", device="cpu")
    photo = Image.fromarray(data.coffee()).resize((1024, 768), Image.LANCZOS)
    pixels = np.asarray(photo)
    rng = np.random.default_rng(0)
    points = [(float(x), float(y), tuple(int(c) for c in pixels[int(y), int(x)]), 6.0)
              for x, y in zip(rng.uniform(0, 1023, 10), rng.uniform(0, 767, 10))]
    with tempfile.TemporaryDirectory() as stored:
        photo_path, layer_path = Path(stored) / "photo", Path(stored) / "layer.png"
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=90)
        photo_path.write_bytes(buffer.getvalue())
        hint_image(points, photo.size).save(layer_path)
        shipped = dict(hints.REACH["object"])
        times = {s: [] for s in args.settings}
        try:
            for run in range(args.runs + 1):
                for s in args.settings:
                    hints.REACH["object"] = parse_setting(s)  # the pipeline passes REACH's keywords to propagate
                    t = time.perf_counter()
                    live_preview(colorizer, str(photo_path), stored, colorizer.render_size, hints=[str(layer_path)])
                    if run:  # the first run prepares the photo
                        times[s].append(time.perf_counter() - t)
        finally:
            hints.REACH["object"] = shipped
    for s, t in times.items():
        print(f"{s}: p50 {1000 * np.median(t):.0f} ms, p95 {1000 * np.percentile(t, 95):.0f} ms ({len(t)} runs)")


if __name__ == "__main__":
    main()
