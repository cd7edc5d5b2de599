"""The weights file (safetensors + metadata) and atomic training checkpoints.

A weights file is self-describing: its metadata holds the architecture and arguments, the Lab
normalisation, the default render size, and what it was trained on and how well it scored, so
:func:`load_weights` rebuilds the model from the file alone. Nothing here unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .color import LAB_NORMALIZATION
from .files import atomic_write
from .models import build_model, model_config, unwrap

__all__ = ["WeightsError", "save_weights", "load_weights", "read_metadata", "update_metadata", "interpolate_weights",
           "training_summary", "training_config", "FORMAT"]

FORMAT = "colorization-weights/1"
PathLike = Union[str, os.PathLike]


class WeightsError(ValueError):
    """A file that is not a usable weights file; the message says why."""


def save_weights(path: PathLike, model: nn.Module, info: dict[str, Any], half: bool = True) -> None:
    """Write the unwrapped model's weights (float16 by default) and its metadata.

    ``info`` may hold ``title``, ``render_size``, ``training`` and ``metrics``; everything is stored as JSON.
    """
    model = unwrap(model)
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        # Variances and the class prior hold values below float16's resolution: they stay float32.
        if half and value.is_floating_point() and "running_var" not in key and not key.endswith("class_prior"):
            value = value.half()
        tensors[key] = value.contiguous()
    meta = {
        "format": FORMAT,
        "model": json.dumps(model_config(model)),
        "lab": json.dumps(LAB_NORMALIZATION),
    }
    meta.update({k: json.dumps(v) for k, v in info.items()})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


# A bound on what a file may ask the loader to allocate; the shipped models have 2-4 M parameters.
MAX_PARAMETERS = 100_000_000
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
_INT_DTYPES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The decoded, checked metadata of a weights file; raises :class:`WeightsError` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a valid safetensors weights file ({exc})") from None
    if raw.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a colorization weights file (metadata format {raw.get('format')!r:.80})")
    try:
        meta = {k: (json.loads(v) if k != "format" else v) for k, v in raw.items()}
    except (json.JSONDecodeError, RecursionError) as exc:  # deep nesting is a RecursionError
        raise WeightsError(f"{path}: corrupt metadata ({type(exc).__name__}: {exc})") from None
    _check_metadata(path, meta)
    return meta


def _check_metadata(path: Path, meta: dict[str, Any]) -> None:
    """Refuse metadata whose fields have the wrong type or value: callers index them without checks."""
    model = meta.get("model")
    if not (isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("args"), dict)):
        raise WeightsError(f"{path}: metadata 'model' must be an object with a string 'name' and an object 'args', "
                           f"got {model!r:.80}")
    if "lab" not in meta:
        raise WeightsError(f"{path}: metadata has no 'lab' (the Lab normalisation it was trained with)")
    if meta["lab"] != LAB_NORMALIZATION:
        raise WeightsError(f"{path}: trained with Lab normalisation {meta['lab']!r:.120}, "
                           f"this library uses {LAB_NORMALIZATION}")
    size = meta.get("render_size", 32)
    if not (type(size) is int and 32 <= size <= 2048 and size % 32 == 0):
        raise WeightsError(f"{path}: metadata 'render_size' must be a multiple of 32 in [32, 2048], got {size!r:.80}")
    if not isinstance(meta.get("title", ""), str):
        raise WeightsError(f"{path}: metadata 'title' must be a string, got {meta['title']!r:.80}")
    for key in ("training", "metrics"):
        if not isinstance(meta.get(key, {}), dict):
            raise WeightsError(f"{path}: metadata {key!r} must be an object, got {meta[key]!r:.80}")


def _check_tensors(path: Path, meta: dict[str, Any]) -> None:
    """Compare the model the metadata describes with the file's tensor names, shapes and dtypes.

    The model is built on the meta device and the tensors are not read, so no file can make this allocate.
    """
    try:
        with torch.device("meta"):
            expected = build_model(meta["model"]["name"], **meta["model"]["args"]).state_dict()
    except Exception as exc:  # arguments from a file can fail in any way; each means the file is unusable
        raise WeightsError(f"{path}: cannot rebuild its model ({type(exc).__name__}: {exc})") from None
    count = sum(v.numel() for v in expected.values())
    if count > MAX_PARAMETERS:
        raise WeightsError(f"{path}: its model would have {count:,} parameters, more than the {MAX_PARAMETERS:,} "
                           "this loader accepts")
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {k: (f.get_slice(k).get_dtype(), f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: cannot read its tensor list ({exc})") from None
    mismatch = f"{path}: weights do not match the model in its metadata"
    missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing or unexpected:
        raise WeightsError(f"{mismatch} ({len(missing)} tensors missing, e.g. {missing[:3]}; "
                           f"{len(unexpected)} unexpected, e.g. {unexpected[:3]})")
    for key, target in expected.items():
        dtype, shape = found[key]
        if list(shape) != list(target.shape):
            raise WeightsError(f"{mismatch} (tensor {key} has shape {list(shape)}, "
                               f"the model needs {list(target.shape)})")
        if dtype not in (_FLOAT_DTYPES if target.is_floating_point() else _INT_DTYPES):
            raise WeightsError(f"{mismatch} (tensor {key} has dtype {dtype}, the model needs {target.dtype})")


def load_weights(path: PathLike, device: Union[str, torch.device] = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model described by the file's metadata and load it with ``strict=True`` (eval mode).

    Everything wrong with a file, hostile or damaged, raises :class:`WeightsError` before anything large is allocated.
    """
    path = Path(path)
    meta = read_metadata(path)
    _check_tensors(path, meta)
    model = build_model(meta["model"]["name"], **meta["model"]["args"])
    target = model.state_dict()
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k).to(target[k].dtype) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise WeightsError(f"{path}: cannot read its tensors ({exc})") from None
    for name, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise WeightsError(f"{path}: tensor {name} holds NaN or infinite values")
    model.load_state_dict(state, strict=True)  # names and shapes were checked above; strict all the same
    return model.to(device).eval(), meta


def update_metadata(path: PathLike, info: dict[str, Any]) -> None:
    """Merge ``info`` into a weights file's metadata (e.g. measured scores), tensors unchanged."""
    meta = read_metadata(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: cannot read its tensors ({exc})") from None
    raw = {k: (v if k == "format" else json.dumps(v)) for k, v in {**meta, **info}.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=raw))


def interpolate_weights(first: PathLike, second: PathLike, alpha: float, out: PathLike, title: str = "") -> None:
    """Write ``(1 - alpha) * first + alpha * second`` as a new weights file (WiSE-FT).

    Wortsman et al. (2022) found that interpolating a fine-tuned network's weights with those it was
    fine-tuned from keeps most of the fine-tuning's gain on its own data and recovers robustness on
    other data. Both files must hold the same architecture; integer buffers (batch-norm step counts)
    are taken from ``second``. The metadata says what was mixed and in what proportion.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    model_a, meta_a = load_weights(first)
    model_b, meta_b = load_weights(second)
    if meta_a["model"] != meta_b["model"]:
        raise WeightsError(f"{first} and {second} hold different models ({meta_a['model']} vs {meta_b['model']})")
    state_a = model_a.state_dict()
    mixed = {k: torch.lerp(state_a[k].float(), v.float(), alpha).to(v.dtype) if v.is_floating_point() else v
             for k, v in model_b.state_dict().items()}
    model_b.load_state_dict(mixed)
    sources = [{"path": str(path), "weight": weight, "title": meta.get("title"), "training": meta.get("training")}
               for path, weight, meta in ((first, 1.0 - alpha, meta_a), (second, alpha, meta_b))]
    info = {"title": title or f"{meta_b.get('title', second)} (interpolated, alpha {alpha:g})",
            "training": {"interpolated_from": sources}}
    if "render_size" in meta_b:
        info["render_size"] = meta_b["render_size"]
    save_weights(out, model_b, info)


def training_summary(meta: dict[str, Any]) -> str:
    """One line on how a file was trained, from its metadata (an interpolation names its parts)."""
    training = meta.get("training") or {}
    if "interpolated_from" in training:
        return " + ".join(f"{s['weight']:g} x [{training_summary(s)}]" for s in training["interpolated_from"])
    if not training:
        return "no training record"
    seconds = training.get("wall_time_s")
    return (f"{training.get('steps', '?')} steps of batch {training.get('batch_size', '?')} on "
            f"{training.get('train_photos', '?')} photos, {f'{seconds:.0f} s' if seconds else '? s'} on "
            f"{training.get('hardware', '?')}")


def training_config(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``TrainConfig`` fields of the run that made a file; for an interpolation, its second part's
    (the parts of a WiSE-FT mix are one run and its continuation, with one data split). Empty if unknown."""
    training = meta.get("training") or {}
    if "interpolated_from" in training:
        return training_config(training["interpolated_from"][-1])
    return training.get("config") or {}
