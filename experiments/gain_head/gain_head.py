"""Can a network tell how vivid a photo should be? A per-image colour-strength head, fitted and checked.

    python experiments/gain_head/gain_head.py weights/cnn.safetensors \
        --out experiments/gain_head/results/cnn.json [--cache-dir runs/cache]

The per-image least-squares gain on the predicted ab (see ``experiments/chroma_gain``) differs a lot between
photos. This fits the cheapest head that could learn it: a linear function of the frozen encoder's
globally pooled deepest features, g = w . phi + b (clamped to [0, 3]), multiplied into the ab. The
fit minimises the ab error of g x prediction directly (a weighted ridge regression, closed form:
only three numbers per photo are needed, sum p.p, p.t and t.t over its pixels). It is fitted on the
training run's own training photos and judged on its held-out ones, beside: the model as is (x1),
the best single gain, the per-image oracle (each photo's own best gain, the most any head could
reach), and a 10-fold cross-validated fit on the held-out photos themselves (photos the network
never trained on). Mean squared ab error per pixel, in Lab units squared; writes the JSON file ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from colorization.color import rgb_to_lab
from colorization.data import decode_photos
from colorization.pipeline import load_colorizer
from colorization.paths import data_dir
from colorization.train import run_split

RIDGE = [1e4, 1e5, 1e6, 1e7, 1e8]


@torch.inference_mode()
def extract(model, images: torch.Tensor, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled deepest encoder features (N, C) and per-photo mean p.p, p.t, t.t of ab (N, 3)."""
    captured = {}
    hook = model.encoder.register_forward_hook(lambda m, i, out: captured.update(deep=out[-1]))
    feats, stats = [], []
    for start in range(0, len(images), batch_size):
        lab = rgb_to_lab(images[start : start + batch_size].float() / 255.0)
        p, t = model(lab[:, :1]).float(), lab[:, 1:]
        feats.append(captured["deep"].float().mean((2, 3)))
        stats.append(torch.stack([(p * p).mean((1, 2, 3)), (p * t).mean((1, 2, 3)), (t * t).mean((1, 2, 3))], 1))
    hook.remove()
    return torch.cat(feats).double(), torch.cat(stats).double()


def error(g, stats: torch.Tensor) -> float:
    """Mean over photos of the per-pixel squared ab error of g x prediction."""
    pp, pt, tt = stats.T
    return float((g * g * pp - 2 * g * pt + tt).mean())


def fit(x: torch.Tensor, stats: torch.Tensor, ridge: float) -> torch.Tensor:
    """w minimising sum_i (x_i . w)^2 pp_i - 2 (x_i . w) pt_i + ridge |w|^2 (the bias unpenalised)."""
    pp, pt, _ = stats.T
    penalty = torch.eye(x.shape[1], dtype=x.dtype) * ridge
    penalty[-1, -1] = 0
    return torch.linalg.solve((x * pp[:, None]).T @ x + penalty, x.T @ pt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--train-data", default=str(data_dir() / "train"))
    parser.add_argument("--cache-dir", help="decode cache, as for train")
    args = parser.parse_args()
    model = load_colorizer(args.weights, device="cpu").model
    train_files, val_files, config = run_split(args.weights, args.train_data)
    data = {}
    for name, files in (("held_out", val_files), ("train", train_files)):
        photos = decode_photos(files, config["image_size"], workers=2, progress=False, cache_dir=args.cache_dir)
        data[name] = extract(model, photos.images)
        print(f"{name}: {len(photos.files)} photos", flush=True)

    (f_train, s_train), (f_val, s_val) = data["train"], data["held_out"]
    mean, std = f_train.mean(0), f_train.std(0) + 1e-6

    def design(f):
        return torch.cat([(f - mean) / std, torch.ones(len(f), 1, dtype=f.dtype)], 1)

    x_train, x_val = design(f_train), design(f_val)
    best_constant = float(s_train[:, 1].sum() / s_train[:, 0].sum())
    oracle = (s_val[:, 1] / s_val[:, 0]).clamp(0, 3)
    report = {"photos": {"train": len(x_train), "held_out": len(x_val)}, "features": f_train.shape[1],
              "held_out_error": {"x1": error(1.0, s_val), f"best single gain on train ({best_constant:.3f})":
                                 error(best_constant, s_val), "per-image oracle": error(oracle, s_val)},
              "train_error": {"x1": error(1.0, s_train)}, "head_fitted_on_train": {}, "head_cv_on_held_out": {}}
    for ridge in RIDGE:
        w = fit(x_train, s_train, ridge)
        g_val = (x_val @ w).clamp(0, 3)
        report["head_fitted_on_train"][f"{ridge:g}"] = {
            "train_error": error((x_train @ w).clamp(0, 3), s_train), "held_out_error": error(g_val, s_val),
            "held_out_gain_mean": float(g_val.mean()), "held_out_gain_sd": float(g_val.std())}
        folds = torch.randperm(len(x_val), generator=torch.Generator().manual_seed(0)).chunk(10)
        total = 0.0
        for k, test in enumerate(folds):
            rest = torch.cat([f for j, f in enumerate(folds) if j != k])
            w_k = fit(x_val[rest], s_val[rest], ridge)
            total += error((x_val[test] @ w_k).clamp(0, 3), s_val[test]) * len(test)
        report["head_cv_on_held_out"][f"{ridge:g}"] = total / len(x_val)
    print(json.dumps(report, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
