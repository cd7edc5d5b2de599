"""Shared fixtures: real photos from ../shared/data (read in place) and small weights files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from colorization.paths import data_dir

DATA = data_dir()

torch.set_num_threads(min(2, os.cpu_count() or 1))


def photos(folder: str, n: int) -> list[Path]:
    """The first ``n`` photos (sorted) of a folder under ../shared/data."""
    from colorization.images import find_images

    path = DATA / folder
    if not path.is_dir():
        pytest.skip(f"{path} is missing: the shared photo collection is needed")
    return find_images([path])[:n]


@pytest.fixture(scope="session")
def train_photos() -> list[Path]:
    return photos("train/bsds500_train", 16)


@pytest.fixture(scope="session")
def eval_photos() -> list[Path]:
    return photos("eval/Kodak24", 8)


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    """An untrained effnet-unet saved as a weights file: fast, and enough for pipeline mechanics."""
    from colorization.models import build_model
    from colorization.weights import save_weights

    torch.manual_seed(0)
    model = build_model("effnet-unet")
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(path, model, {"title": "untrained test model", "render_size": 64})
    return path


@pytest.fixture(scope="session")
def colorizer(weights_file):
    from colorization import load_colorizer

    return load_colorizer(weights_file, device="cpu")
