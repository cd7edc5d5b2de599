"""A learned affinity for the hint engine: which pixels share a colour, learned from colour photos.

The oracle (oracle.py) shows what the engine lacks: knowing, from the gray photo, which pixels share a hint's true
colour. This learns that as a metric. Each pixel at the render size is described by the network's encoder features
(strides 8 and 16, as two_sided.py's "feat" and colorization.reference take them), its L and the CNN's predicted ab;
a linear map W sends that to a 16-d embedding whose squared distance, through a logistic, predicts whether two
pixels' TRUE ab are within 20 units (``LEAK_OTHER_AB``, the leak's own notion of "the same colour"). Pairs are drawn
near each other (within a short side / 4) on photos of the collections the CNN trained on, never on the selection's.

The embedding then joins propagate's ``features`` (affinity and, with ``knn``, KNN links' space) through
two_sided.py's "embed=S" key (scale S; ``EMBEDDING`` below is the file it reads).

    python experiments/hint_propagation/learned_affinity.py --photos 400 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from colorization.color import rgb_to_lab
from colorization.hints import LEAK_OTHER_AB
from colorization.images import find_images, read_image
from colorization.paths import data_dir
from colorization.pipeline import load_colorizer, prepare

EMBEDDING = Path(__file__).parent / "results" / "learned_affinity.npz"
COLLECTIONS = ["bsds500_train", "imagen_ajschumacher", "package_photos", "intel_scenes", "catsdogs"]


def pixel_inputs(colorizer, l_small: np.ndarray) -> np.ndarray:
    """Per pixel at the render size (h, w, c): the encoder's features, L / 50 and the CNN's ab / 50."""
    from two_sided import network_features

    ab = colorizer.predict_ab_from_small(l_small)
    return np.concatenate([network_features(colorizer, l_small, 0), l_small[..., None] / 50.0, ab / 50.0],
                          axis=-1).astype(np.float32)


def embed(inputs: np.ndarray, path: Path = EMBEDDING) -> np.ndarray:
    """The learned embedding (h, w, 16) of pixel_inputs."""
    saved = np.load(path)
    return ((inputs - saved["mean"]) @ saved["w"].T).astype(np.float32)


def true_ab(prepared, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    small = cv2.resize(prepared.truth, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return rgb_to_lab(small[..., :3].astype(np.float32) / 255.0)[..., 1:]


def pairs(inputs: np.ndarray, ab: np.ndarray, count: int, rng: np.random.Generator):
    h, w = ab.shape[:2]
    reach = max(2, min(h, w) // 4)
    y0, x0 = rng.integers(0, h, count), rng.integers(0, w, count)
    y1 = np.clip(y0 + rng.integers(-reach, reach + 1, count), 0, h - 1)
    x1 = np.clip(x0 + rng.integers(-reach, reach + 1, count), 0, w - 1)
    same = np.linalg.norm(ab[y0, x0] - ab[y1, x1], axis=1) < LEAK_OTHER_AB
    return inputs[y0, x0], inputs[y1, x1], same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--pairs", type=int, default=2000, help="pairs per photo")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--dims", type=int, default=16)
    parser.add_argument("--out", default=str(EMBEDDING))
    args = parser.parse_args()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    colorizer = load_colorizer("weights/cnn.safetensors", device="cpu")
    files = sorted(random.Random(0).sample(find_images([data_dir() / "train" / c for c in COLLECTIONS]), args.photos))
    rng = np.random.default_rng(0)
    a, b, same = [], [], []
    for path in files:
        prepared = prepare(read_image(path))
        l_small = colorizer.l_small(prepared.l)
        inputs = pixel_inputs(colorizer, l_small)
        pa, pb, s = pairs(inputs, true_ab(prepared, l_small.shape), args.pairs, rng)
        a.append(pa)
        b.append(pb)
        same.append(s)
    a, b, same = (torch.from_numpy(np.concatenate(x)) for x in (a, b, same))
    mean = torch.cat([a, b]).mean(0)
    held = len(a) // 10  # the last photos' pairs, to check the fit
    print(f"{len(files)} photos, {len(a)} pairs ({same.float().mean():.1%} the same colour), "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    w = torch.nn.Parameter(torch.randn(args.dims, a.shape[1]) * 0.1)
    bias = torch.nn.Parameter(torch.tensor(2.0))
    optimiser = torch.optim.Adam([w, bias], lr=1e-2)

    def logits(x, y):
        return bias - (((x - y) @ w.T) ** 2).sum(1)

    for step in range(args.steps):
        index = torch.randint(0, len(a) - held, (8192,))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(a[index], b[index]), same[index].float())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 500 == 0 or step == args.steps - 1:
            with torch.no_grad():
                p = logits(a[-held:], b[-held:]) > 0
                accuracy = (p == same[-held:]).float().mean().item()
                base = max(same[-held:].float().mean().item(), 1 - same[-held:].float().mean().item())
            print(f"step {step}: loss {loss.item():.4f}, held-out accuracy {accuracy:.1%} (always the majority: "
                  f"{base:.1%})", flush=True)
    # Scaled so that the logistic's 50 % point is at distance 1: exp(-d^2 / 2 S^2) then reads in those units.
    scale = float(np.sqrt(max(bias.item(), 1e-3)))
    np.savez(args.out, w=(w.detach().numpy() / scale).astype(np.float32), mean=mean.numpy().astype(np.float32))
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"photos": len(files), "pairs": len(a), "same": float(same.float().mean()), "steps": args.steps,
         "held_out_accuracy": accuracy, "majority": base, "seconds": round(time.perf_counter() - t0, 1),
         "collections": COLLECTIONS}, indent=1))
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
