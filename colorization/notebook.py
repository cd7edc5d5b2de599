"""The tutorial notebooks' one setup call (fast mode, the photos, figure format, device, run folders), the
constant-colour baseline they score beside gray, the scored picture grids, and the short runs their exercises make."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .paths import runs_dir
from .runtime import choose_device
from .sources import PhotoSource, photo_source

__all__ = ["NotebookSetup", "setup", "constant_baseline", "scored_grid", "ShortRun", "short_run", "expect"]


@dataclass(frozen=True)
class NotebookSetup(PhotoSource):
    """What every notebook needs to know about where it runs: its photos (a :class:`PhotoSource`), and these."""

    fast: bool  # COLORIZATION_FAST=1: tiny settings, the whole notebook in a minute or two (CI)
    device: str  # "cuda" when there is a GPU, else "cpu"

    @property
    def mode(self) -> str:
        """Which settings a notebook uses: "fast", "cpu" or "cuda"."""
        return "fast" if self.fast else self.device

    def run_dir(self, name: str) -> Path:
        """The training run a notebook writes (and a later notebook reads), e.g. ``runs/notebook-cnn``."""
        return runs_dir() / (f"notebook-{name}-fast" if self.fast else f"notebook-{name}")


def setup() -> NotebookSetup:
    """Read the fast switch, find the photos and say which they are, set JPEG figures and quiet logging."""
    source = photo_source()
    print(f"photos: {source.name}: {source.about}")
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = lambda: None  # noqa: E731
    shell = get_ipython()
    if shell is not None:  # figures as JPEG: photos take a fraction of PNG's size in the saved notebook
        shell.run_line_magic("config", "InlineBackend.figure_formats = ['jpeg']")
        shell.run_line_magic("config", "InlineBackend.print_figure_kwargs = "
                                       "{'bbox_inches': 'tight', 'pil_kwargs': {'quality': 90}}")
    logging.getLogger("colorization").setLevel(logging.ERROR)  # skipped gray photos are counted, not listed
    return NotebookSetup(**vars(source), fast=os.environ.get("COLORIZATION_FAST") == "1",
                         device=choose_device().type)


def constant_baseline(paths: Sequence[Union[str, os.PathLike]], ab: Optional[tuple[float, float]] = None) -> dict:
    """The constant-colour baseline on photos, beside gray: each photo's L with one ``ab`` (default: the one that
    best fits these photos, :func:`~colorization.metrics.constant_ab_baseline`) on every pixel.

    Returns :func:`~colorization.evaluation.summarize`'s means with the constant as ``"model"`` (so ``psnr_gain``
    is the tint's gain over gray), ``"ab"``, and ``"per_image"`` records in :func:`score_images`' schema.
    """
    from .evaluation import score_images, summarize
    from .images import read_image
    from .metrics import constant_ab_baseline, constant_ab_image
    from .pipeline import prepare

    photos = [prepare(read_image(p)) for p in paths]
    ab = tuple(ab) if ab is not None else constant_ab_baseline(p.truth for p in photos)
    records = [{"file": str(path), **score_images(constant_ab_image(p.truth, ab), np.asarray(p.gray)[..., :3],
                                                  p.truth)} for path, p in zip(paths, photos)]
    return {**summarize(records), "ab": ab, "per_image": records}


def scored_grid(colorizers: Sequence, photos: Sequence[Union[str, os.PathLike]], labels: Sequence[str],
                tile: int = 220, render_size: Optional[int] = None):
    """:func:`~colorization.plots.comparison_grid` as a figure: columns named by ``labels`` (gray input, each
    colorizer, original), rows by the photos' names, every tile scored as ``evaluate`` scores it.

    A tile says its PSNR against the original (the gray input's too, and each result's gain over it) and its
    colourfulness (CF; the original's is the target). Returns ``(figure, records)``, one
    :func:`~colorization.evaluation.score_images` record per photo and colorizer: ``records[photo][colorizer]``.
    """
    import matplotlib.pyplot as plt

    from .evaluation import score_prepared
    from .images import read_image
    from .pipeline import prepare
    from .plots import comparison_grid

    grid = comparison_grid(colorizers, photos, tile=tile, render_size=render_size)
    records, heights = [], []
    for path in photos:
        prepared = prepare(read_image(path))
        records.append([score_prepared(c, prepared, render_size)[1] for c in colorizers])
        h, w = prepared.l.shape
        heights.append(max(1, round(h * tile / w)))  # comparison_grid's row heights
    fig, ax = plt.subplots(figsize=(grid.width / 100, grid.height / 100), dpi=100)
    ax.imshow(grid)
    ax.set_xticks([(i + 0.5) * tile for i in range(len(labels))], labels, fontsize=9)
    ax.xaxis.tick_top()
    tops = np.concatenate([[0], np.cumsum(heights)[:-1]])
    ax.set_yticks(tops + np.array(heights) / 2, [Path(p).name[:28] for p in photos], fontsize=8)
    ax.tick_params(length=0)
    box = {"facecolor": "black", "alpha": 0.55, "pad": 1.5, "linewidth": 0}
    for top, height, row in zip(tops, heights, records):
        gray = row[0]["gray"]
        notes = [f"{gray['psnr']:.1f} dB | CF {gray['colorfulness']:.0f}"]
        notes += [f"{r['model']['psnr']:.1f} dB ({r['model']['psnr'] - gray['psnr']:+.1f}) | CF "
                  f"{r['model']['colorfulness']:.0f}" for r in row]
        notes.append(f"CF {row[0]['ground_truth']['colorfulness']:.0f}")
        for column, note in enumerate(notes):
            ax.text(column * tile + 4, top + height - 4, note, color="white", fontsize=7, va="bottom", bbox=box)
    fig.tight_layout()
    return fig, records


@dataclass(frozen=True)
class ShortRun:
    """What an exercise compares from one short training run: its validations and its logged losses."""

    name: str
    config: object  # the run's TrainConfig (the change applied; its out_dir holds log.jsonl and best.safetensors)
    seconds: float  # the whole train() call: decoding, steps, validations
    steps: list  # the validated steps
    gains: list  # PSNR gain over gray (dB) at each of them
    colorfulness: list  # the validated model's mean colourfulness at each of them
    truth_colorfulness: float  # the validation originals'
    losses: dict  # each logged loss (e.g. "loss", "loss_d_real") -> its values over the logged steps

    HEADER = (f"{'run':22}{'first':>8}{'best':>8}{'':11}{'last':>8}{'CF':>8}{'time':>9}"
              "   (validations: PSNR gain over gray in dB; CF: the last one's colourfulness)")

    @property
    def best_step(self) -> int:
        """The validated step with the highest PSNR gain (what ``best.safetensors`` keeps for a regression run)."""
        return self.steps[int(np.argmax(self.gains))]

    def mean_loss(self, key: str, last: Optional[int] = None) -> float:
        """The mean of one logged loss, over the last ``last`` logged steps when given."""
        values = self.losses.get(key, [])
        return float(np.mean(values[-last:] if last else values)) if values else float("nan")

    def row(self) -> str:
        """One line: first, best and last validation, colourfulness, seconds."""
        return (f"{self.name:22}{self.gains[0]:>+8.2f}{max(self.gains):>+8.2f} (step {self.best_step:>4}){self.gains[-1]:>+8.2f}"
                f"{self.colorfulness[-1]:>8.1f}{self.seconds:>7.0f} s")


def short_run(config, name: str, **change) -> ShortRun:
    """Train ``config`` with an exercise's one ``change`` (e.g. ``ema_decay=0``) into a run folder of its own beside
    ``config.out_dir``, and read back what the exercise compares."""
    from .plots import read_log
    from .train import train

    out = Path(config.out_dir)
    run = replace(config, out_dir=str(out.parent / f"{out.name}-{name.replace(' ', '-').replace('=', '')}"), **change)
    start = time.perf_counter()
    train(run, progress=False)
    seconds = time.perf_counter() - start
    train_log, val_log = read_log(Path(run.out_dir) / "log.jsonl")
    keys = sorted({k for r in train_log for k in r if k == "loss" or k.startswith("loss_")})
    return ShortRun(name, run, seconds, [r["step"] for r in val_log], [r["val"]["psnr_gain"] for r in val_log],
                    [r["val"]["model"]["colorfulness"] for r in val_log],
                    val_log[-1]["val"]["ground_truth"]["colorfulness"],
                    {k: [r[k] for r in train_log if k in r] for k in keys})


def expect(claim: str, holds: bool, source: str, loose: Optional[str] = None) -> bool:
    """Print an exercise's expectation, whether this run met it, where the expectation comes from, and (``loose``)
    why a run this short can only check it loosely."""
    print(f"expected: {claim}: {'yes' if holds else 'NO'}\n    (expectation from {source})"
          + (f"\n    loose check: {loose}" if loose else ""))
    return holds
