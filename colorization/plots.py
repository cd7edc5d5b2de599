"""Figures for model cards and notebooks: training curves and gray / predicted / truth grids."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from .evaluation import SCORE_KEYS
from .images import read_image
from .pipeline import Colorizer, prepare

__all__ = ["read_log", "plot_training_log", "comparison_grid"]

PathLike = Union[str, os.PathLike]


def read_log(path: PathLike) -> tuple[list[dict], list[dict]]:
    """(training records, validation records) of a run's ``log.jsonl``; validations in ``evaluate``'s schema.

    Logs written before validation used that schema (flat keys such as ``model_psnr``) are converted here.
    """
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    val = [{**r, "val": _nested_scores(r["val"])} for r in records if "val" in r]
    return [r for r in records if "lr" in r], val


def _nested_scores(val: dict) -> dict:
    """A validation record in ``evaluate``'s schema, whether it was written in it or in the old flat one."""
    if "model" in val:
        return val
    nested = {part: {key: val[f"{part}_{key}"] for key in SCORE_KEYS if f"{part}_{key}" in val}
              for part in ("model", "gray")}
    nested["ground_truth"] = {"colorfulness": val["truth_colorfulness"]} if "truth_colorfulness" in val else {}
    if "psnr" in nested["model"] and "psnr" in nested["gray"]:
        nested["psnr_gain"] = val.get("psnr_gain", nested["model"]["psnr"] - nested["gray"]["psnr"])
    return nested


def plot_training_log(log_path: PathLike, out_path: Optional[PathLike] = None, title: str = ""):
    """Training loss, validation PSNR (model vs gray) and validation colourfulness over steps."""
    # The object-oriented Figure needs no pyplot and never switches a notebook's backend.
    from matplotlib.figure import Figure

    train, val = read_log(log_path)
    gan = any("loss_d_real" in r for r in train)
    fig = Figure(figsize=(17 if gan else 13, 3.6))
    axes = fig.subplots(1, 4 if gan else 3)

    def curve(ax, key: str, label: str) -> None:
        points = [(r["step"], r[key]) for r in train if key in r]
        if not points:
            return
        steps, values = map(np.array, zip(*points))
        k = max(len(values) // 30, 5)
        if len(values) < 2 * k:
            ax.plot(steps, values, lw=1.0, label=label)
            return
        line = ax.plot(steps, values, lw=0.6, alpha=0.35)[0]
        # a running mean, so the trend shows through the noise
        ax.plot(steps[k - 1 :], np.convolve(values, np.ones(k) / k, mode="valid"), lw=1.5,
                color=line.get_color(), label=f"{label} (mean of {k})")

    curve(axes[0], "loss", "training loss")
    curve(axes[0], "loss_g_l1", "generator L1")
    axes[0].set(xlabel="step", ylabel="loss (normalised ab)", title="regression loss")
    axes[0].legend()
    if gan:
        for key, label in (("loss_d_real", "D on real"), ("loss_d_fake", "D on fake"), ("loss_g_adv", "G adversarial")):
            curve(axes[3], key, label)
        axes[3].set(xlabel="step", ylabel="hinge loss", title="critic and generator")
        axes[3].legend()
    vsteps = [r["step"] for r in val]
    axes[1].plot(vsteps, [r["val"]["model"]["psnr"] for r in val], "o-", label="model")
    axes[1].plot(vsteps, [r["val"]["gray"]["psnr"] for r in val], "s--", label="gray baseline")
    axes[1].set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR (held-out photos)")
    axes[1].legend()
    axes[2].plot(vsteps, [r["val"]["model"]["colorfulness"] for r in val], "o-", label="model")
    axes[2].plot(vsteps, [r["val"]["ground_truth"]["colorfulness"] for r in val], "s--", label="ground truth")
    axes[2].set(xlabel="step", ylabel="colourfulness", title="validation colourfulness")
    axes[2].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if out_path:
        fig.savefig(out_path, dpi=110)
    return fig


def comparison_grid(colorizers: Sequence[Colorizer], photos: Sequence[PathLike], tile: int = 256,
                    render_size: Optional[int] = None) -> Image.Image:
    """One row per photo: gray input, each colorizer's result, the original.

    Tiles are ``tile`` px wide and as high as each photo's aspect makes them, so the columns line up
    whatever mix of portrait, square and landscape photos the rows hold.
    """
    rows = []
    for path in photos:
        prepared = prepare(read_image(path))
        images = [prepared.gray.convert("RGB")]
        images += [c.colorize_prepared(prepared, render_size).convert("RGB") for c in colorizers]
        images.append(Image.fromarray(prepared.truth))
        h, w = prepared.l.shape
        size = (tile, max(1, round(h * tile / w)))
        rows.append(np.concatenate([np.asarray(im.resize(size, Image.LANCZOS)) for im in images], axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))
