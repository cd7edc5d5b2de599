"""The tutorial notebooks' one setup call: fast mode, the photo collection, figure format, device, run folders."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .paths import EVAL_FOLDERS, data_dir, runs_dir
from .runtime import choose_device

__all__ = ["NotebookSetup", "setup"]


@dataclass(frozen=True)
class NotebookSetup:
    """What every notebook needs to know about where it runs."""

    fast: bool  # COLORIZATION_FAST=1: tiny settings, the whole notebook in a minute or two (CI)
    data: Path  # the photo collection, with train/ and eval/
    device: str  # "cuda" when there is a GPU, else "cpu"
    folders: tuple[str, ...] = EVAL_FOLDERS

    @property
    def eval(self) -> Path:
        return self.data / "eval"

    @property
    def mode(self) -> str:
        """Which settings a notebook uses: "fast", "cpu" or "cuda"."""
        return "fast" if self.fast else self.device

    def run_dir(self, name: str) -> Path:
        """The training run a notebook writes (and a later notebook reads), e.g. ``runs/notebook-cnn``."""
        return runs_dir() / (f"notebook-{name}-fast" if self.fast else f"notebook-{name}")


def setup() -> NotebookSetup:
    """Read the fast switch, check the photo collection is there, set JPEG figures and quiet logging."""
    data = data_dir()
    if not (data / "eval").is_dir():
        raise FileNotFoundError(f"the photo collection is missing: expected {data}/train and {data}/eval "
                                "(set COLORIZATION_DATA to where it is)")
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
    return NotebookSetup(fast=os.environ.get("COLORIZATION_FAST") == "1", data=data, device=choose_device().type)
