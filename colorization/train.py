"""Training: one ``train(config)`` for CPU and CUDA, resumable, validated, seeded.

Regression (L1-type loss on ab), classification over ab bins (Zhang et al.'s rebalanced soft
cross-entropy, for models built with ``output="classification"``) and adversarial fine-tuning
(``gan``) share the loop, the data, the validation and the checkpoints.

Batches are a pure function of (seed, step): an epoch's order is a seeded permutation and each
step's augmentation has its own seeded generator, so a resumed run sees exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

import errno
import inspect
import json
import logging
import math
import os
import random
import tempfile
import time
import typing
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .color import normalize_ab, rgb_to_lab
from .data import decode_photos, lab_crops, split_files
from .evaluation import score_images, summarize
from .files import atomic_write
from .gan import PatchDiscriminator, gan_step
from .images import find_images
from .hints import hint_tensor, simulated_hints, training_hints
from .models import MODELS, build_model, model_class, model_config, unwrap
from .paths import data_dir
from .pipeline import DEFAULT_RENDER_SIZE, compose
from .quantize import classification_loss, compute_prior, load_prior, rebalance_weights
from .runtime import check_render_size, choose_device, hardware_name
from .weights import load_weights, read_metadata, save_weights, training_config

__all__ = ["TrainConfig", "TrainingIOError", "StepBudget", "Processes", "train", "train_step", "validate",
           "selection_score", "holdout_split", "run_split", "validation_overlap", "save_checkpoint", "load_checkpoint", "LOSSES"]

log = logging.getLogger(__name__)

VAL_HINTS = 10  # hint points per photo when validating a hint model (the 10-point figure)

LOSSES = {
    "l1": F.l1_loss,
    # beta 0.1 in normalised ab is 11 Lab units: quadratic for small errors, L1 for large ones.
    "smooth_l1": lambda pred, target: F.smooth_l1_loss(pred, target, beta=0.1),
    "mse": F.mse_loss,
}


@dataclass
class TrainConfig:
    """Everything a training run needs; the CLI builds it from flags, notebooks build it directly."""

    data: list[str] = field(default_factory=lambda: [str(data_dir() / "train")])
    out_dir: str = "runs/cnn"
    model: str = "effnet-unet"
    model_args: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = True  # start the encoder from ImageNet weights where the model has one
    image_size: int = 128  # photos are decoded once at this size (short side, centre square)
    crop_size: int = 128  # random resized crops of this size are what the network trains on
    min_crop_scale: float = 0.35  # smallest crop, as a fraction of the photo's area
    batch_size: int = 32
    steps: int = 2000
    lr: float = 1e-3
    encoder_lr_mult: float = 0.1  # a pretrained encoder learns slower, which fights overfitting
    hints: bool = False  # user hints (Zhang et al. 2017): simulated hints as input; adds hint inputs to the model
    hint_lr_mult: float = 3.0  # the new hint inputs learn at this multiple of lr
    frozen_norm: bool = False  # batch norm keeps its running statistics: fine-tuning at small batches
    weight_decay: float = 0.01
    warmup_steps: int = 100
    loss: str = "smooth_l1"  # regression loss; classification models use the rebalanced cross-entropy
    prior: str = ""  # classification: ab prior file from `python -m colorization prior` (default: computed here)
    rebalance: float = 0.5  # classification: lambda, uniform's share in the rebalancing (1: none, 0: inverse frequency)
    ema_decay: float = 0.999  # 0 turns the EMA of the weights off
    max_photos: int = 0  # 0 = all photos found
    val_count: int = 500  # photos held out for validation (never trained on)
    # Validate on these folders instead of a random share of ``data``; photos found there are never trained
    # on, also when they lie inside ``data``. Holding out whole collections shows what a random split
    # cannot: a model that keeps fitting its training collections while it gets worse on other photos.
    val_data: list[str] = field(default_factory=list)
    val_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 10
    render_size: int = 0  # default render size written into the weights; 0: init_weights' own, else 256
    init_weights: str = ""  # start from this weights file (its architecture replaces model/model_args)
    gan: bool = False  # adversarial fine-tuning with a PatchGAN critic (start it from a trained CNN)
    gan_weight: float = 0.02  # weight of the adversarial term beside the L1 term (pix2pix's 1:100 is 0.01)
    d_lr: float = 2e-4  # the critic's learning rate (two time-scale update rule: its own rate)
    d_pretrain_steps: int = 200  # NoGAN: the critic trains alone on the frozen generator's outputs first
    d_base_channels: int = 64
    gan_min_psnr_gain: float = 0.5  # a GAN checkpoint counts as best by colourfulness only above this PSNR gain
    time_budget_s: float = 0.0  # >0: after 100 steps, cut ``steps`` so training ends within this many seconds
    cache_dir: str = ""  # keep decoded photos here (safetensors shards) so the next run skips decoding
    title: str = ""
    seed: int = 0
    workers: int = 2
    device: str = "auto"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self):
        model_class(self.model)  # an unknown name is said before any photo is read
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        for name in ("steps", "batch_size", "image_size", "crop_size", "val_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.render_size:
            check_render_size(self.render_size)
        if isinstance(self.data, (str, os.PathLike)):
            self.data = [str(self.data)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """A config from plain values (flags, a recipe, a weights file's record); unknown keys and wrong types raise."""
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(values) - set(hints))
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"unknown config keys: {', '.join(unknown)}; known: {known}")
        return cls(**{key: _typed(key, value, hints[key]) for key, value in values.items()})

    @classmethod
    def from_recipe(cls, path: Union[str, os.PathLike], overrides: Optional[dict[str, Any]] = None) -> "TrainConfig":
        """The config in a recipe file (a JSON object of fields), with ``overrides`` (e.g. flags) on top.

        Relative ``data`` and ``val_data`` paths in the file are relative to :func:`~colorization.paths.data_dir`,
        so a recipe runs wherever the photo collection is; all other paths are relative to the working folder.
        """
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a recipe is a JSON object of TrainConfig fields")
        try:
            cls.from_dict(values)  # the file's own mistakes, reported with its name
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        for key in ("data", "val_data"):
            if key in values:
                folders = [values[key]] if isinstance(values[key], str) else values[key]
                values[key] = [str(data_dir() / folder) for folder in folders]
        return cls.from_dict({**values, **(overrides or {})})


def _typed(name: str, value: Any, hint: Any) -> Any:
    """``value`` as field ``name`` of type ``hint`` takes it (a float field takes an int, a list one string)."""
    kind = typing.get_origin(hint) or hint
    if kind is float and type(value) is int:
        value = float(value)
    if kind is list and isinstance(value, (str, os.PathLike)):
        value = [str(value)]
    fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is list:
        fits = fits and all(isinstance(v, str) for v in value)
    if not fits:
        raise ValueError(f"config key {name!r} must be {'a list of str' if kind is list else kind.__name__}, "
                         f"got {value!r:.60}")
    if kind is float and not math.isfinite(value):  # a recipe's JSON may hold NaN or Infinity
        raise ValueError(f"config key {name!r} must be a finite number, got {value!r}")
    return value


def _batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices for ``step``: consecutive slices of a seeded per-epoch permutation."""
    per_epoch = max(n // batch_size, 1)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[k * batch_size : (k + 1) * batch_size] if n >= batch_size else perm


@torch.no_grad()
def validate(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 64,
             hints: int = 0) -> dict:
    """Model and gray baseline scored on uint8 photos (N, 3, S, S), in ``evaluate``'s schema (:func:`summarize`).

    Each result goes through the pipeline's own ``compose`` and :func:`score_images`, so these numbers are
    computed exactly as ``evaluate`` computes them. ``hints`` > 0 gives a hint model that many hints per photo,
    simulated as ``evaluate --hints`` does (seeded with the photo's index), without propagation.
    """
    model.eval()
    records = []
    for start in range(0, images.shape[0], batch_size):
        rgb = images[start : start + batch_size].to(device).float() / 255.0
        lab = rgb_to_lab(rgb)
        hint = None
        if hints:
            hint = torch.stack([hint_tensor(simulated_hints(images[start + i].permute(1, 2, 0).numpy(), hints,
                                                             start + i), images.shape[-2:])
                                for i in range(rgb.shape[0])]).to(device)
        ab_pred = model(lab[:, :1], hints=hint).float()
        for i in range(rgb.shape[0]):
            l = lab[i, 0].cpu().numpy()
            truth = images[start + i].permute(1, 2, 0).numpy()
            pred = np.asarray(compose(l, ab_pred[i].permute(1, 2, 0).cpu().numpy()))
            gray = np.asarray(compose(l, np.zeros(l.shape + (2,), np.float32)))
            records.append(score_images(pred, gray, truth))
    return summarize(records)


def selection_score(val: dict, kind: str, gan_min_psnr_gain: float = TrainConfig.gan_min_psnr_gain) -> float:
    """How good a validation (:func:`validate`) is when choosing the best checkpoint: higher is better.

    ``kind`` "regression": PSNR. "gan": colourfulness among the checkpoints that keep at least
    ``gan_min_psnr_gain`` dB over gray (below that, the PSNR gain decides). "classification", whose virtue
    is colour rather than PSNR: colourfulness among the checkpoints whose SSIM is at least gray's (below
    that, SSIM decides).
    """
    if kind == "gan":
        if val["psnr_gain"] >= gan_min_psnr_gain:
            return 1000.0 + val["model"]["colorfulness"]
        return val["psnr_gain"]
    if kind == "classification":
        ssim_gain = val["model"]["ssim"] - val["gray"]["ssim"]
        return 1000.0 + val["model"]["colorfulness"] if ssim_gain >= 0 else ssim_gain
    if kind != "regression":
        raise ValueError(f"unknown kind of model {kind!r}; known: regression, classification, gan")
    return val["model"]["psnr"]


class StepBudget:
    """How many steps a run takes: ``steps``, or fewer when ``seconds`` of training would not fit them.

    The seconds per step are measured once, on steps 20-100 of the phase that lasts (after cudnn autotuning
    and compilation; a GAN's joint phase, after ``offset`` critic-only steps, costs more per step), and
    ``total`` is cut to what fits with 8 % left for validation and checkpoints. The learning-rate schedule
    reads ``total``, so it follows the cut.
    """

    def __init__(self, steps: int, seconds: float = 0.0, offset: int = 0):
        self.total, self.seconds, self.offset = steps, seconds, offset
        self._window, self._t_start, self._t_from = (0, 0), 0.0, 0.0

    def start(self) -> None:
        """Start the clock as the loop starts (on resume, ``total`` already holds what the budget chose)."""
        measure = self.seconds > 0 and self.total > self.offset + 100
        self._window = (self.offset + 20, self.offset + 100) if measure else (0, 0)
        self._t_start = self._t_from = time.perf_counter()

    def after_step(self, step: int, agree: Callable[[int], int] = lambda n: n) -> Optional[dict]:
        """Call after each step (``step`` counts it); when it cuts ``total``, returns the record for the log.

        ``agree`` turns this process's count into the one all processes use (every rank must stop together).
        """
        first, last = self._window
        if step == first:
            self._t_from = time.perf_counter()
        if step != last:
            return None
        per_step = (time.perf_counter() - self._t_from) / (last - first)
        left = self.seconds - (time.perf_counter() - self._t_start)
        self.total = min(self.total, agree(step + max(int(0.92 * left / per_step), 1)))
        return {"step": step, "steps_for_budget": self.total, "seconds_per_step": round(per_step, 5)}


def _param_groups(model: nn.Module, lr: float, encoder_lr_mult: float, weight_decay: float,
                  hint_lr_mult: float = TrainConfig.hint_lr_mult) -> list[dict]:
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        mult = encoder_lr_mult if name.startswith("encoder.") else hint_lr_mult if name.startswith("hint_in.") else 1.0
        decay = p.ndim > 1  # no weight decay on biases and norm scales
        groups.setdefault((mult, decay), []).append(p)
    return [{"params": ps, "lr": lr * mult, "weight_decay": weight_decay if decay else 0.0}
            for (mult, decay), ps in groups.items()]


def _schedule(warmup_steps: int, budget: StepBudget) -> Callable[[int], float]:
    def factor(step: int) -> float:  # linear warm-up, then cosine down to 5%
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(budget.total - warmup_steps, 1)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class TrainingIOError(OSError):
    """The run's output could not be written (full disk, read-only folder, a file in the way)."""


@contextmanager
def _writing(path: Path):
    """Turn a failed write into one error naming the file and the cause, instead of a traceback from torch."""
    try:
        yield
    except OSError as exc:
        raise TrainingIOError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _check_out_dir(out: Path) -> None:
    """Fail before the slow decoding if ``out`` cannot be created or written to."""
    with _writing(out):
        in_the_way = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
        if in_the_way:
            raise NotADirectoryError(errno.ENOTDIR, f"{in_the_way} is a file, not a folder")
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()


def _append_jsonl(path: Path, record: dict) -> None:
    with _writing(path), open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint (they will be written again)."""
    if not path.exists():
        return
    lines = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                lines.append(line)
        except ValueError:  # a line torn by a full disk or a kill
            pass
    with _writing(path):
        atomic_write(path, lambda tmp: Path(tmp).write_text("".join(ln + "\n" for ln in lines)))


def save_checkpoint(path: Path, parts: dict[str, Any], progress: dict[str, Any]) -> None:
    """Write ``progress`` (step, best, ...) and the ``state_dict`` of each part that is not None, atomically."""
    state = {**progress, **{name: part.state_dict() for name, part in parts.items() if part is not None}}
    with _writing(path):
        atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, parts: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Load each part (those not None) from a checkpoint of :func:`save_checkpoint`; returns the whole state."""
    state = torch.load(path, map_location=device, weights_only=True)
    for name, part in parts.items():
        if part is not None:
            part.load_state_dict(state[name])
    return state


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, crop_size: int,
               min_crop_scale: float = TrainConfig.min_crop_scale, regression_loss: str = TrainConfig.loss,
               rebalance: float = TrainConfig.rebalance, channels_last: bool = False,
               generator: Optional[torch.Generator] = None, hints: bool = False) -> torch.Tensor:
    """One optimisation step on a uint8 batch (B, 3, S, S): crop to Lab, predict ab, loss, update; returns the loss.

    ``regression_loss`` names the loss of a regression model (:data:`LOSSES`); a classification model uses the
    rebalanced cross-entropy with ``rebalance`` as its lambda. ``hints``: the network also sees hints simulated
    from each crop (:func:`~colorization.hints.training_hints`). Shared by ``train`` and the training benchmark,
    so the benchmark times exactly this.
    """
    l, ab = lab_crops(images, crop_size, min_crop_scale, generator)
    if channels_last:
        l = l.contiguous(memory_format=torch.channels_last)
    hint = training_hints(ab, generator) if hints else None
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=images.device.type == "cuda"):
        out = net(l, raw=True, hints=hint)
    model = unwrap(net)
    if model.output == "classification":
        loss = classification_loss(out, ab, model.ab_bins, rebalance_weights(model.class_prior, rebalance))
    else:
        loss = LOSSES[regression_loss](out.float(), normalize_ab(ab))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    return loss.detach()


def holdout_split(config: TrainConfig) -> tuple[list[Path], list[Path]]:
    """(train, validation) photo files as ``config`` asks: a seeded random split of ``data``, or
    ``val_data`` (at most ``val_count`` of it, seeded) with those photos removed from ``data``."""
    files = find_images(config.data)
    val_files: list[Path] = []
    if config.val_data:
        held_out = find_images(config.val_data)
        if not held_out:
            raise ValueError(f"no photos to validate on in {', '.join(config.val_data)}")
        held = {f.resolve() for f in held_out}
        files = [f for f in files if f.resolve() not in held]
        val_files = held_out
        if len(held_out) > config.val_count:
            val_files = random.Random(config.seed).sample(held_out, config.val_count)
    if config.max_photos and len(files) > config.max_photos:
        files = random.Random(config.seed).sample(files, config.max_photos)
    if len(files) < 2:
        raise ValueError(f"need at least 2 photos to train, found {len(files)} in {', '.join(config.data)}")
    if val_files:
        return sorted(files), sorted(val_files)
    return split_files(files, config.val_count, config.seed)


@dataclass(frozen=True)
class Processes:
    """This process's place in a run: its rank, the number of processes, its device (torchrun starts several)."""

    rank: int
    world: int
    device: torch.device

    @classmethod
    def join(cls, device_name: str) -> "Processes":
        """The device alone, or, when started by torchrun, this rank's device in the joined process group."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        device = choose_device(device_name)
        if world == 1:
            return cls(0, 1, device)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), world, device)

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` under DistributedDataParallel (it averages gradients across processes) when there are several."""
        if self.world == 1:
            return model
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def smallest(self, n: int) -> int:
        """The smallest of every process's ``n``."""
        if self.world == 1:
            return n
        value = torch.tensor([n], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return int(value.item())

    def gather(self, value: Any) -> list:
        """Every process's ``value``, in rank order."""
        values: list = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def leave(self) -> None:
        """Leave the process group, all ranks together (one that tears down gloo while a peer still talks can abort)."""
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()


def run_split(weights: Union[str, os.PathLike], data: Union[str, os.PathLike]) -> tuple[list[Path], list[Path], dict]:
    """The photos of ``data`` a weights file's training run trained on and held out, and that run's config:
    its own split rule (random share, or its ``val_data`` folders) over ``data`` on this machine."""
    config = training_config(read_metadata(weights))
    if not config:
        raise ValueError(f"{weights}: no training config in its metadata, so no split to rebuild")
    train_files, val_files = holdout_split(TrainConfig.from_dict({**config, "data": [str(data)]}))
    return train_files, val_files, config


def _training_runs(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The training records of the run that made a file and of every run it started from or mixed."""
    training = meta.get("training") or {}
    runs = [training] if training.get("config") else []
    for part in training.get("interpolated_from", []):
        runs += _training_runs(part)
    if training.get("initialized_from"):
        runs += _training_runs(training["initialized_from"])
    return runs


def validation_overlap(init_weights: Union[str, os.PathLike], val_files: Sequence[Path],
                       data: Sequence[str]) -> Optional[int]:
    """How many of ``val_files`` the runs behind ``init_weights`` trained on (it and the runs it started from or
    mixed), by their recorded split rules over ``data``; None when a rule cannot be rebuilt here: its folders
    are missing, or ``data`` now holds another number of photos than that run saw."""
    seen: set[Path] = set()
    for run in _training_runs(read_metadata(init_weights)):
        try:
            files, held = holdout_split(TrainConfig.from_dict({**run["config"], "data": list(data)}))
        except (ValueError, TypeError, FileNotFoundError):
            return None
        recorded = [run.get(k) for k in ("train_photos", "val_photos", "skipped_photos")]
        if all(isinstance(n, int) for n in recorded) and sum(recorded) != len(files) + len(held):
            return None  # another pool of photos: the split drawn from it today is not the one trained on
        seen.update(f.resolve() for f in files)
    return sum(f.resolve() in seen for f in val_files)


def _check_validation(config: TrainConfig, val_files: Sequence[Path]) -> None:
    """Warn when a fine-tune would validate on photos its starting point trained on: those scores flatter it."""
    if not config.init_weights or not val_files:
        return
    overlap = validation_overlap(config.init_weights, val_files, config.data)
    if overlap is None:
        log.warning("cannot tell whether %s trained on the validation photos (its recorded split does not rebuild "
                    "over this data); to be sure, validate on collections it never saw (val_data)", config.init_weights)
    elif overlap:
        warnings.warn(f"{overlap} of the {len(val_files)} validation photos are training photos of {config.init_weights} "
                      "(or of a run it started from): validation will flatter the model; validate on photos it never "
                      "saw (val_data, or its own validation split)", stacklevel=3)


def _parameter_checksum(model: nn.Module) -> float:
    return float(sum(p.detach().double().sum().item() for p in model.parameters()))


def _check_model(config: TrainConfig) -> None:
    """Raise build_model's error for a bad model name or arguments now, not after minutes of decoding."""
    if config.init_weights:
        return  # the file names its model
    # On the meta device, nothing is allocated; with the random state put back, the real build draws the same weights.
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        build_model(config.model, **config.model_args)


def _initial_model(config: TrainConfig, device: torch.device, train_images: torch.Tensor
                   ) -> tuple[nn.Module, dict, Optional[str]]:
    """(the model to train on ``device``, the metadata of ``init_weights`` or {}, where a class prior came from)."""
    init_meta: dict = {}
    if config.init_weights:
        model, init_meta = load_weights(config.init_weights)
        if config.hints and not getattr(model, "hints", False):
            model = _with_hint_inputs(model)
        model.train()
    else:
        model = build_model(config.model, **{**config.model_args, **({"hints": True} if config.hints else {})})
        if config.pretrained and hasattr(model, "load_imagenet_encoder"):
            model.load_imagenet_encoder()
    model.to(device)
    prior_source = None
    if model.output == "classification" and not config.init_weights:
        # The rebalancing weights come from the colours of the photos trained on (all ranks' shards
        # would be better, but one shard of thousands of photos estimates the same distribution).
        if config.prior:
            prior, prior_source = load_prior(config.prior, model.ab_bins), config.prior
        else:
            prior, prior_source = compute_prior(train_images, model.ab_bins), f"{len(train_images)} training photos"
        model.class_prior.copy_(prior.to(device))
    return model, init_meta, prior_source


def _with_hint_inputs(model: nn.Module) -> nn.Module:
    """The same model with Zhang et al.'s hint inputs added, zero-initialised: its output is unchanged until trained."""
    config = model_config(model)
    if "hints" not in inspect.signature(MODELS[config["name"]]).parameters:
        raise ValueError(f"model {config['name']!r} has no hint inputs; train hints from an effnet-unet")
    hinted = build_model(config["name"], **{**config["args"], "hints": True})
    missing, unexpected = hinted.load_state_dict(model.state_dict(), strict=False)
    if unexpected or not all(k.startswith("hint_in.") for k in missing):
        raise RuntimeError(f"adding hint inputs changed more than them: {missing}, {unexpected}")
    return hinted


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train a colorizer as ``config`` says (``config`` is not changed); returns the path of the best weights.

    The best is the validation that :func:`selection_score` ranks highest for this kind of model: the
    highest PSNR for a regression model; for a GAN, the most colourful one that keeps ``gan_min_psnr_gain``
    dB over gray; for a classification model, the most colourful one with SSIM at least gray's. Without
    validation photos, the final weights. Writes to ``config.out_dir``: ``log.jsonl`` (train and validation
    records), ``checkpoint.pt`` (atomic, for ``resume``) and ``best.safetensors``, whose metadata records the
    steps taken (``training.total_steps``: fewer than ``config.steps`` when ``time_budget_s`` cut them).
    Under ``torchrun`` each process trains on its own shard of the photos with DistributedDataParallel and
    only rank 0 writes. A write that fails raises :class:`TrainingIOError`; ``resume`` without a checkpoint
    raises ``FileNotFoundError``.
    """
    from tqdm.auto import tqdm

    _check_model(config)
    procs = Processes.join(config.device)
    rank, world, device = procs.rank, procs.world, procs.device
    out = Path(config.out_dir)
    ckpt_path, log_path, best_path = out / "checkpoint.pt", out / "log.jsonl", out / "best.safetensors"
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {ckpt_path}; run without --resume to start")
    if procs.main:  # only rank 0 writes
        _check_out_dir(out)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    train_files, val_files = holdout_split(config)
    if procs.main:
        _check_validation(config, val_files)
    show = progress and procs.main
    cache = config.cache_dir or None
    train_set = decode_photos(train_files[rank::world], config.image_size, config.workers, progress=show,
                              cache_dir=cache)
    val_set = decode_photos(val_files if procs.main else [], config.image_size, config.workers, progress=show,
                            cache_dir=cache)
    if len(train_set.files) == 0:
        raise ValueError("no usable colour photos to train on (all unreadable or gray)")
    # Small enough to live on the GPU: then augmentation never waits for the CPU.
    train_images = train_set.images.to(device)

    model, init_meta, prior_source = _initial_model(config, device, train_images)
    discriminator, opt_d = None, None
    if config.gan:
        if world > 1:
            raise ValueError("GAN training runs in one process; start it without torchrun")
        if model.output != "regression":
            raise ValueError("GAN training needs a regression generator (its L1 term compares ab)")
        discriminator = PatchDiscriminator(config.d_base_channels).to(device)
        opt_d = torch.optim.AdamW(discriminator.parameters(), lr=config.d_lr, betas=(0.5, 0.999), weight_decay=0.0)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True) \
        if config.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(_param_groups(model, config.lr, config.encoder_lr_mult, config.weight_decay,
                                                config.hint_lr_mult), lr=config.lr)
    budget = StepBudget(config.steps, config.time_budget_s, config.d_pretrain_steps if config.gan else 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config.warmup_steps, budget))
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "ema": ema,
             "discriminator": discriminator, "opt_d": opt_d}
    step, best, elapsed = 0, {"score": -math.inf, "step": 0, "val": None}, 0.0

    if resume:
        state = load_checkpoint(ckpt_path, parts, device)
        step, best, elapsed = state["step"], state["best"], state["elapsed"]
        if config.time_budget_s > 0:
            budget.total = state.get("steps", config.steps)  # the step count the budget chose
        best.setdefault("score", best.get("psnr", -math.inf))
        if procs.main:
            _truncate_log(log_path, step)
        log.info("resumed from %s at step %d", ckpt_path, step)
    elif procs.main:
        with _writing(log_path):
            log_path.unlink(missing_ok=True)

    forward = procs.wrap(model)  # the unwrapped ``model`` is what gets saved
    if config.compile:
        forward = torch.compile(forward)
    kind = "gan" if config.gan else model.output
    averaged = ema.module if ema is not None else model  # what is validated and exported
    render_size = config.render_size or int(init_meta.get("render_size", DEFAULT_RENDER_SIZE))

    def export(path: Path, title: str, metrics: dict) -> None:
        training = {
            "data": [str(d) for d in config.data],
            "train_photos": len(train_files),
            "val_photos": len(val_set.files),
            "skipped_photos": len(train_set.skipped) + len(val_set.skipped),
            "steps": step,
            "total_steps": budget.total,
            "batch_size": config.batch_size * world,
            "crop_size": config.crop_size,
            "images_seen": step * config.batch_size * world,
            "wall_time_s": round(elapsed, 1),
            "hardware": hardware_name(device) + (f" x {world} processes" if world > 1 else ""),
            "torch": torch.__version__,
            "config": asdict(config),
            **({"class_prior_from": prior_source} if prior_source else {}),
            **({"initialized_from": {"path": config.init_weights, "title": init_meta.get("title"),
                                     "training": init_meta.get("training")}} if init_meta else {}),
        }
        with _writing(path):
            save_weights(path, averaged, {"title": config.title or title, "render_size": render_size,
                                          **({"hints": True} if config.hints else {}),
                                          "training": training, "metrics": metrics})

    t_last, n_last = time.perf_counter(), 0
    budget.start()
    # A context, so that an error is printed below a closed bar, not glued to its line.
    with tqdm(total=budget.total, initial=step, desc="train", unit="step", disable=not show) as bar:
        while step < budget.total:
            t0 = time.perf_counter()
            model.train()
            if config.frozen_norm:
                for module in model.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
            idx = _batch_indices(train_images.shape[0], config.batch_size, step, config.seed + 7919 * rank).to(device)
            gen = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + step + 7919 * rank)
            if discriminator is None:
                losses = {"loss": train_step(forward, optimizer, train_images[idx], config.crop_size,
                                             config.min_crop_scale, config.loss, config.rebalance,
                                             config.channels_last, gen, config.hints)}
            else:
                opt_g = None if step < config.d_pretrain_steps else optimizer  # NoGAN: the critic alone first
                losses = gan_step(forward, discriminator, opt_g, opt_d, train_images[idx], config.crop_size,
                                  config.min_crop_scale, config.gan_weight, gen)
            if discriminator is None or "loss_g_l1" in losses:  # the generator stepped
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
            step += 1
            elapsed += time.perf_counter() - t0
            n_last += idx.numel() * world
            cut = budget.after_step(step, procs.smallest)
            if cut:
                bar.total = budget.total
                if procs.main:
                    _append_jsonl(log_path, cut)
            if procs.main and (step % config.log_every == 0 or step == budget.total):
                rate = n_last / max(time.perf_counter() - t_last, 1e-9)
                t_last, n_last = time.perf_counter(), 0
                values = {k: round(v.item(), 6) for k, v in losses.items()}
                _append_jsonl(log_path, {"step": step, **values, "lr": scheduler.get_last_lr()[0],
                                         "images_per_s": round(rate, 1)})
                bar.set_postfix(**{k.replace("loss_", ""): f"{v:.4f}" for k, v in values.items()}, img_s=f"{rate:.0f}")
            bar.update(1)

            if procs.main and (step % config.val_every == 0 or step == budget.total) and len(val_set.files):
                val = validate(averaged, val_set.images, device)
                _append_jsonl(log_path, {"step": step, "val": val})
                score = selection_score(val, kind, config.gan_min_psnr_gain)
                if config.hints:  # a hint model is chosen by its mean PSNR without hints and with VAL_HINTS
                    val_hints = validate(averaged, val_set.images, device, hints=VAL_HINTS)
                    _append_jsonl(log_path, {"step": step, "val_hints": {"hints": VAL_HINTS, **val_hints}})
                    val = {**val, "with_hints": {"hints": VAL_HINTS, **val_hints}}
                    score = (score + val_hints["model"]["psnr"]) / 2
                if score > best["score"]:
                    best = {"score": score, "step": step, "val": val}
                    export(best_path, f"{model_config(model)['name']} ({step} steps)", {"validation": val})
                t_last, n_last = time.perf_counter(), 0  # validation time is not training throughput
            if procs.main and (step % config.checkpoint_every == 0 or step == budget.total):
                save_checkpoint(ckpt_path, parts, {"step": step, "best": best, "elapsed": elapsed,
                                                   "steps": budget.total, "config": asdict(config)})
    if world > 1:
        # Record that every process ended with the same weights (DDP's promise, checked).
        sums = procs.gather(_parameter_checksum(model))
        if procs.main:
            _append_jsonl(log_path, {"step": step, "rank_checksums": sums})
        dist.barrier()
    if procs.main and not best_path.exists():  # no validation photos: export the final weights instead
        export(best_path, model_config(model)["name"], {})
    procs.leave()
    return best_path
