"""Training data: any folder tree of photos, decoded once into uint8 tensors, augmented on the device.

Decoding is the slow part of training on small photos, so it happens once (in worker processes);
random resized crops and flips then run as one batched ``grid_sample`` on whatever device trains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .color import is_grayish, rgb_to_lab
from .images import ImageError, as_uint8, find_images, read_image, to_float_rgb

__all__ = ["PhotoFolder", "DecodedPhotos", "decode_photos", "split_files",
           "random_resized_crop", "lab_crops"]

log = logging.getLogger(__name__)


def _square_uint8(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and centre-crop a square; (size, size, 3) uint8."""
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    rgb = cv2.resize(rgb, (nw, nh), interpolation=interp)
    top, left = (nh - size) // 2, (nw - size) // 2
    rgb = rgb[top : top + size, left : left + size]
    return as_uint8(rgb)


class PhotoFolder(Dataset):
    """Photos under one or more folders, each as a (3, size, size) uint8 tensor.

    An item is ``(index, tensor or None, reason)``: unreadable and gray photos come back as None with
    the reason, so one bad file never stops a run.
    """

    def __init__(self, files: Sequence[Union[str, os.PathLike]], size: int = 128, skip_gray: bool = True):
        self.files = [Path(f) for f in files]
        self.size = size
        self.skip_gray = skip_gray

    @classmethod
    def from_folders(cls, roots: Sequence[Union[str, os.PathLike]], **kwargs) -> "PhotoFolder":
        files = find_images(roots)
        if not files:
            raise FileNotFoundError(f"no photos ({', '.join(map(str, roots))}) - expected jpg, png, webp, bmp or tiff")
        return cls(files, **kwargs)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        try:
            rgb, _ = to_float_rgb(read_image(self.files[index]))
        except ImageError as exc:
            return index, None, str(exc)
        if self.skip_gray and is_grayish(rgb):
            return index, None, f"{self.files[index]}: gray or nearly gray, skipped for training"
        return index, torch.from_numpy(_square_uint8(rgb, self.size)).permute(2, 0, 1).contiguous(), ""


@dataclass
class DecodedPhotos:
    """A decoded set: ``images`` (N, 3, S, S) uint8 and the files they came from."""

    images: torch.Tensor
    files: list[Path]
    skipped: list[str]


def _collate(items):
    return items


def _cache_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_cache(cache_dir: Path, tag: str) -> dict[str, tuple[Optional[torch.Tensor], str]]:
    """Every photo decoded before into ``cache_dir`` with these settings: key -> (tensor or None, reason)."""
    from safetensors import safe_open

    found: dict[str, tuple[Optional[torch.Tensor], str]] = {}
    for shard in sorted(cache_dir.glob(f"{tag}-*.safetensors")):
        try:
            with safe_open(str(shard), framework="pt") as f:
                meta = f.metadata()
                images = f.get_tensor("images")
            keys, skipped = json.loads(meta["keys"]), json.loads(meta["skipped"])
        except Exception as exc:  # a broken shard costs a re-decode, never the run
            log.warning("ignoring decode cache %s (%s)", shard, exc)
            continue
        found.update({key: (images[i], "") for i, key in enumerate(keys)})
        found.update({key: (None, reason) for key, reason in skipped.items()})
    return found


def _write_cache(cache_dir: Path, tag: str, decoded: dict[str, tuple[Optional[torch.Tensor], str]]) -> None:
    from safetensors.torch import save_file

    from .files import atomic_write

    kept = [k for k, (t, _) in decoded.items() if t is not None]
    images = torch.stack([decoded[k][0] for k in kept]) if kept else torch.empty((0, 3, 1, 1), dtype=torch.uint8)
    meta = {"keys": json.dumps(kept), "skipped": json.dumps({k: r for k, (t, r) in decoded.items() if t is None})}
    name = hashlib.sha1("\n".join(sorted(decoded)).encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(cache_dir / f"{tag}-{name}.safetensors", lambda tmp: save_file({"images": images}, tmp, metadata=meta))


def decode_photos(files: Sequence[Union[str, os.PathLike]], size: int = 128, workers: int = 2,
                  skip_gray: bool = True, progress: bool = True,
                  cache_dir: Union[str, os.PathLike, None] = None) -> DecodedPhotos:
    """Decode every photo once into memory (uint8), reporting and skipping bad or gray ones.

    With ``cache_dir``, photos decoded before (same file, size and mtime; same settings) are read
    back from safetensors shards there and only new ones are decoded: repeated runs on the same
    folder start in seconds.
    """
    from tqdm.auto import tqdm

    dataset = PhotoFolder(files, size=size, skip_gray=skip_gray)
    keys = [_cache_key(f) for f in dataset.files] if cache_dir else []
    tag = f"photos{size}{'-color' if skip_gray else ''}"
    cached = _read_cache(Path(cache_dir), tag) if cache_dir else {}
    images = torch.empty((len(dataset), 3, size, size), dtype=torch.uint8)
    keep = torch.zeros(len(dataset), dtype=torch.bool)
    skipped: list[str] = []
    new: dict[str, tuple[Optional[torch.Tensor], str]] = {}

    def record(index: int, tensor: Optional[torch.Tensor], reason: str) -> None:
        if tensor is None:
            skipped.append(reason)
            log.warning("%s", reason)
        else:
            images[index] = tensor
            keep[index] = True

    todo = []  # indices still to decode
    for i in range(len(dataset)):
        if cache_dir and keys[i] in cached:
            record(i, *cached[keys[i]])
        else:
            todo.append(i)
    loader = DataLoader(torch.utils.data.Subset(dataset, todo), batch_size=64, num_workers=workers,
                        collate_fn=_collate)
    for batch in tqdm(loader, desc=f"decode {len(todo)} photos", unit="batch", disable=not progress or not todo):
        for index, tensor, reason in batch:
            record(index, tensor, reason)
            if cache_dir:  # a view of ``images``: holding the worker's tensor would hold a file descriptor
                new[keys[index]] = (images[index] if tensor is not None else None, reason)
    if new:
        _write_cache(Path(cache_dir), tag, new)
    kept = keep.nonzero().flatten()
    return DecodedPhotos(images[kept].clone(), [dataset.files[i] for i in kept.tolist()], skipped)


def split_files(files: Sequence[Path], val_count: int, seed: int) -> tuple[list[Path], list[Path]]:
    """A seeded split into (train, validation); validation photos are never trained on."""
    files = sorted(files)
    order = list(range(len(files)))
    random.Random(seed).shuffle(order)
    val_count = min(val_count, max(len(files) // 5, 1)) if len(files) > 1 else 0
    val = sorted(files[i] for i in order[:val_count])
    train = sorted(files[i] for i in order[val_count:])
    return train, val


def random_resized_crop(images: torch.Tensor, out_size: int, min_scale: float = 0.35,
                        generator: Optional[torch.Generator] = None, flip: bool = True) -> torch.Tensor:
    """Batched random resized crop (area ``min_scale``-1, aspect 3/4-4/3) and horizontal flip.

    images: (B, 3, S, S) uint8 on any device -> (B, 3, out_size, out_size) float in [0, 1].
    No colour jitter: a hue change would teach wrong colours.
    """
    b = images.shape[0]
    dev = images.device
    rand = lambda: torch.rand(b, device=dev, generator=generator)  # noqa: E731
    area = min_scale + (1 - min_scale) * rand()
    log_ratio = (rand() * 2 - 1) * math.log(4 / 3)
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width as a fraction of the side
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (rand() * 2 - 1) * (1 - w)  # crop centre in [-1, 1] coordinates, crop stays inside
    cy = (rand() * 2 - 1) * (1 - h)
    sign = torch.where(rand() < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=dev)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, 3, out_size, out_size], align_corners=False)
    x = images.float() / 255.0
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False).clamp(0, 1)


def lab_crops(images: torch.Tensor, crop_size: int, min_scale: float = 0.35,
              generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch: random resized crops of uint8 photos (B, 3, S, S) as (L (B, 1, c, c), ab (B, 2, c, c)).

    The one batch set-up of every training step (regression, classification and GAN).
    """
    lab = rgb_to_lab(random_resized_crop(images, crop_size, min_scale, generator))
    return lab[:, :1], lab[:, 1:]
