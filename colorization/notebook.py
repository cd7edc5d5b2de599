"""The tutorial notebooks' one setup call (fast mode, the photos, figure format, device, run folders), and the
constant-colour baseline they score beside gray."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .paths import runs_dir
from .runtime import choose_device
from .sources import PhotoSource, photo_source

__all__ = ["NotebookSetup", "setup", "constant_baseline"]


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
