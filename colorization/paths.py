"""Where things are found: one function for each folder, overridable by environment variable.

The defaults are relative to the folder holding the package (a checkout, an editable install, a Space's
bundle): ``weights/`` beside it, ``runs/`` beside it and the photo collection in ``../shared/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "weights_dir", "runs_dir", "examples_dir", "cache_dir", "project_relative", "EVAL_FOLDERS"]

_HOME = Path(__file__).resolve().parent.parent
# The evaluation collections of ../shared/data/eval, in the order every table shows them.
EVAL_FOLDERS = ("Kodak24", "McMaster18", "Sun_Hays80", "BSDS500_test", "imagenet_sample")


def data_dir() -> Path:
    """The photo collection (``train/`` and ``eval/``): ``$COLORIZATION_DATA``, else ``../shared/data``."""
    return Path(os.environ.get("COLORIZATION_DATA", _HOME.parent / "shared" / "data"))


def weights_dir() -> Path:
    """The shipped weights files: ``$COLORIZATION_WEIGHTS``, else ``weights/`` beside the package."""
    return Path(os.environ.get("COLORIZATION_WEIGHTS", _HOME / "weights"))


def runs_dir() -> Path:
    """Where the notebooks and studies write their training runs: ``$COLORIZATION_RUNS``, else ``runs/``."""
    return Path(os.environ.get("COLORIZATION_RUNS", _HOME / "runs"))


def cache_dir() -> Path:
    """Downloaded and copied photo sets (:mod:`colorization.sources`): ``$XDG_CACHE_HOME/colorization``, else
    ``~/.cache/colorization``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorization"


def examples_dir() -> Path:
    """The example photos the app offers (with their attribution), beside the package."""
    return _HOME / "examples"


def project_relative(path: Path) -> Path:
    """``path`` relative to the folder holding the package when it lies inside it (for messages), else as is."""
    path = Path(path).resolve()
    return path.relative_to(_HOME) if path.is_relative_to(_HOME) else path
