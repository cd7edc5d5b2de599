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
import json
import logging
import math
import os
import platform
import random
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .color import normalize_ab, rgb_to_lab
from .data import decode_photos, random_resized_crop, split_files
from .gan import PatchDiscriminator, gan_step
from .images import find_images
from .metrics import colorfulness, image_metrics
from .models import build_model, model_config
from .paths import data_dir
from .pipeline import DEFAULT_RENDER_SIZE, compose
from .quantize import classification_loss, compute_prior, load_prior, rebalance_weights
from .files import atomic_write
from .weights import load_weights, save_weights

__all__ = ["TrainConfig", "TrainingIOError", "train", "train_step", "validate", "selection_score", "holdout_split",
           "LOSSES"]

log = logging.getLogger(__name__)

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
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        for name in ("steps", "batch_size", "image_size", "crop_size", "val_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if isinstance(self.data, (str, os.PathLike)):
            self.data = [str(self.data)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**values)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} threads"


def _batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices for ``step``: consecutive slices of a seeded per-epoch permutation."""
    per_epoch = max(n // batch_size, 1)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[k * batch_size : (k + 1) * batch_size] if n >= batch_size else perm


@torch.no_grad()
def validate(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> dict:
    """Mean PSNR/SSIM/colourfulness of model and gray baseline on uint8 photos (N, 3, S, S).

    Each result goes through the pipeline's own ``compose``, so these numbers are computed exactly
    as ``evaluate`` computes them.
    """
    model.eval()
    sums: dict[str, float] = {}
    for start in range(0, images.shape[0], batch_size):
        rgb = images[start : start + batch_size].to(device).float() / 255.0
        lab = rgb_to_lab(rgb)
        ab_pred = model(lab[:, :1]).float()
        for i in range(rgb.shape[0]):
            l = lab[i, 0].cpu().numpy()
            truth = images[start + i].permute(1, 2, 0).numpy()
            pred = np.asarray(compose(l, ab_pred[i].permute(1, 2, 0).cpu().numpy()))
            gray = np.asarray(compose(l, np.zeros(l.shape + (2,), np.float32)))
            for prefix, result in (("model", pred), ("gray", gray)):
                for key, value in image_metrics(result, truth).items():
                    sums[f"{prefix}_{key}"] = sums.get(f"{prefix}_{key}", 0.0) + value
            sums["truth_colorfulness"] = sums.get("truth_colorfulness", 0.0) + colorfulness(truth)
    n = images.shape[0]
    out = {k: v / n for k, v in sums.items()}
    out["psnr_gain"] = out["model_psnr"] - out["gray_psnr"]
    return out


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        is_encoder = name.startswith("encoder.")
        decay = p.ndim > 1  # no weight decay on biases and norm scales
        groups.setdefault((is_encoder, decay), []).append(p)
    return [
        {"params": ps, "lr": config.lr * (config.encoder_lr_mult if enc else 1.0),
         "weight_decay": config.weight_decay if decay else 0.0}
        for (enc, decay), ps in groups.items()
    ]


def _schedule(config: TrainConfig):
    def factor(step: int) -> float:  # linear warm-up, then cosine down to 5%
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1)
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


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, config: TrainConfig,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One optimisation step on a uint8 batch (B, 3, S, S): augment, Lab, predict ab, loss, update.

    Shared by ``train`` and the training benchmark, so the benchmark times exactly this.
    """
    rgb = random_resized_crop(images, config.crop_size, config.min_crop_scale, generator)
    lab = rgb_to_lab(rgb)
    l, ab = lab[:, :1], lab[:, 1:]
    if config.channels_last:
        l = l.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=images.device.type == "cuda"):
        out = net(l, raw=True)
    model = _unwrap(net)
    if model.output == "classification":
        loss = classification_loss(out, ab, model.ab_bins, rebalance_weights(model.class_prior, config.rebalance))
    else:
        loss = LOSSES[config.loss](out.float(), normalize_ab(ab))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    return loss.detach()


def _unwrap(net: nn.Module) -> nn.Module:
    net = getattr(net, "_orig_mod", net)  # torch.compile
    return getattr(net, "module", net)  # DistributedDataParallel


def selection_score(val: dict, config: TrainConfig, output: str = "regression") -> float:
    """Which validation is best.

    Regression: PSNR. GAN: colourfulness among the checkpoints that keep at least
    ``gan_min_psnr_gain`` dB over gray (below that, PSNR decides). Classification, whose virtue is
    colour rather than PSNR: colourfulness among the checkpoints whose SSIM is at least gray's
    (below that, SSIM decides).
    """
    if config.gan:
        if val["psnr_gain"] >= config.gan_min_psnr_gain:
            return 1000.0 + val["model_colorfulness"]
        return val["psnr_gain"]
    if output == "classification":
        ssim_gain = val["model_ssim"] - val["gray_ssim"]
        return 1000.0 + val["model_colorfulness"] if ssim_gain >= 0 else ssim_gain
    return val["model_psnr"]


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


def _distributed(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, _device(device_name)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def _parameter_checksum(model: nn.Module) -> float:
    return float(sum(p.detach().double().sum().item() for p in model.parameters()))


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train a colorizer as ``config`` says; returns the path of the best weights (by validation PSNR).

    Writes to ``config.out_dir``: ``log.jsonl`` (train and validation records), ``checkpoint.pt``
    (atomic, for ``resume``) and ``best.safetensors``. Under ``torchrun`` each process trains on its
    own shard of the photos with DistributedDataParallel and only rank 0 writes. A write that fails
    raises :class:`TrainingIOError`; ``resume`` without a checkpoint raises ``FileNotFoundError``.
    """
    from tqdm.auto import tqdm

    rank, world, device = _distributed(config.device)
    main_process = rank == 0
    out = Path(config.out_dir)
    ckpt_path, log_path, best_path = out / "checkpoint.pt", out / "log.jsonl", out / "best.safetensors"
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {ckpt_path}; run without --resume to start")
    if main_process:  # only rank 0 writes
        _check_out_dir(out)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    train_files, val_files = holdout_split(config)
    show = progress and main_process
    cache = config.cache_dir or None
    train_set = decode_photos(train_files[rank::world], config.image_size, config.workers, progress=show,
                              cache_dir=cache)
    val_set = decode_photos(val_files if main_process else [], config.image_size, config.workers, progress=show,
                            cache_dir=cache)
    if len(train_set.files) == 0:
        raise ValueError("no usable colour photos to train on (all unreadable or gray)")
    # Small enough to live on the GPU: then augmentation never waits for the CPU.
    train_images = train_set.images.to(device)

    init_meta: dict = {}
    if config.init_weights:
        model, init_meta = load_weights(config.init_weights)
        model.train()
    else:
        model = build_model(config.model, **config.model_args)
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
            prior, prior_source = compute_prior(train_images, model.ab_bins), f"{len(train_set.files)} training photos"
        model.class_prior.copy_(prior.to(device))
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
    optimizer = torch.optim.AdamW(_param_groups(model, config), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    step, best, elapsed = 0, {"score": -math.inf, "step": 0, "val": None}, 0.0

    if resume:
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if discriminator is not None:
            discriminator.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
        step, best, elapsed = state["step"], state["best"], state["elapsed"]
        if config.time_budget_s > 0:
            config.steps = state.get("steps", config.steps)  # the step count the budget chose
        best.setdefault("score", best.get("psnr", -math.inf))
        if main_process:
            _truncate_log(log_path, step)
        log.info("resumed from %s at step %d", ckpt_path, step)
    elif main_process:
        with _writing(log_path):
            log_path.unlink(missing_ok=True)

    # DDP averages gradients across processes; the unwrapped ``model`` is what gets saved.
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model
    forward = torch.compile(net) if config.compile else net

    def training_info(final_step: int) -> dict:
        return {
            "data": [str(d) for d in config.data],
            "train_photos": len(train_files),
            "val_photos": len(val_set.files),
            "skipped_photos": len(train_set.skipped) + len(val_set.skipped),
            "steps": final_step,
            "total_steps": config.steps,
            "batch_size": config.batch_size * world,
            "crop_size": config.crop_size,
            "images_seen": final_step * config.batch_size * world,
            "wall_time_s": round(elapsed, 1),
            "hardware": _hardware(device) + (f" x {world} processes" if world > 1 else ""),
            "torch": torch.__version__,
            "config": asdict(config),
            **({"class_prior_from": prior_source} if prior_source else {}),
            **({"initialized_from": {"path": config.init_weights, "title": init_meta.get("title"),
                                     "training": init_meta.get("training")}} if init_meta else {}),
        }

    render_size = config.render_size or int(init_meta.get("render_size", DEFAULT_RENDER_SIZE))
    t_last, n_last = time.perf_counter(), 0
    # The budget is fitted on steps 20-100 of the phase that lasts (a GAN's joint phase costs more
    # per step than its critic-only start).
    offset = config.d_pretrain_steps if config.gan else 0
    budget_from, budget_at = (offset + 20, offset + 100) if config.steps > offset + 100 else (0, 0)
    t_loop = t_budget = time.perf_counter()
    # A context, so that an error is printed below a closed bar, not glued to its line.
    with tqdm(total=config.steps, initial=step, desc="train", unit="step", disable=not show) as bar:
        while step < config.steps:
            t0 = time.perf_counter()
            model.train()
            idx = _batch_indices(train_images.shape[0], config.batch_size, step, config.seed + 7919 * rank).to(device)
            gen = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + step + 7919 * rank)
            if discriminator is None:
                losses = {"loss": train_step(forward, optimizer, train_images[idx], config, gen)}
            else:
                critic_only = step < config.d_pretrain_steps
                losses = gan_step(forward, discriminator, None if critic_only else optimizer, opt_d,
                                  train_images[idx], config, gen)
            generator_stepped = discriminator is None or "loss_g_l1" in losses
            if generator_stepped:
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
            step += 1
            elapsed += time.perf_counter() - t0
            n_last += idx.numel() * world
            if config.time_budget_s > 0 and step == budget_from:
                t_budget = time.perf_counter()
            if config.time_budget_s > 0 and step == budget_at:
                # Seconds per step measured after warm-up (cudnn autotuning, compilation); 8 % is left
                # for validation and checkpoints. The schedule reads config.steps, so it adapts too.
                per_step = (time.perf_counter() - t_budget) / (budget_at - budget_from)
                left = config.time_budget_s - (time.perf_counter() - t_loop)
                fits = step + max(int(0.92 * left / per_step), 1)
                if world > 1:  # every rank must stop at the same step
                    agreed = torch.tensor([fits], device=device)
                    dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
                    fits = int(agreed.item())
                if fits < config.steps:
                    config.steps = fits
                    bar.total = fits
                if main_process:
                    _append_jsonl(log_path, {"step": step, "steps_for_budget": config.steps,
                                             "seconds_per_step": round(per_step, 5)})
            if main_process and (step % config.log_every == 0 or step == config.steps):
                rate = n_last / max(time.perf_counter() - t_last, 1e-9)
                t_last, n_last = time.perf_counter(), 0
                values = {k: round(v.item(), 6) for k, v in losses.items()}
                _append_jsonl(log_path, {"step": step, **values, "lr": scheduler.get_last_lr()[0],
                                         "images_per_s": round(rate, 1)})
                bar.set_postfix(**{k.replace("loss_", ""): f"{v:.4f}" for k, v in values.items()}, img_s=f"{rate:.0f}")
            bar.update(1)

            if main_process and (step % config.val_every == 0 or step == config.steps) and len(val_set.files):
                averaged = ema.module if ema is not None else model
                val = validate(averaged, val_set.images, device)
                _append_jsonl(log_path, {"step": step, "val": val})
                score = selection_score(val, config, model.output)
                if score > best["score"]:
                    best = {"score": score, "step": step, "val": val}
                    with _writing(best_path):
                        save_weights(best_path, averaged, {
                            "title": config.title or f"{model_config(model)['name']} ({step} steps)",
                            "render_size": render_size,
                            "training": training_info(step),
                            "metrics": {"validation": val},
                        })
                t_last, n_last = time.perf_counter(), 0  # validation time is not training throughput
            if main_process and (step % config.checkpoint_every == 0 or step == config.steps):
                state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "best": best, "elapsed": elapsed, "steps": config.steps,
                         "config": asdict(config)}
                if ema is not None:
                    state["ema"] = ema.state_dict()
                if discriminator is not None:
                    state["discriminator"], state["opt_d"] = discriminator.state_dict(), opt_d.state_dict()
                with _writing(ckpt_path):
                    atomic_write(ckpt_path, lambda tmp: torch.save(state, tmp))
    if world > 1:
        # Record that every process ended with the same weights (DDP's promise, checked).
        sums: list = [None] * world
        dist.all_gather_object(sums, _parameter_checksum(model))
        if main_process:
            _append_jsonl(log_path, {"step": step, "rank_checksums": sums})
        dist.barrier()
    if main_process and not best_path.exists():  # no validation photos: export the final weights instead
        with _writing(best_path):
            save_weights(best_path, ema.module if ema is not None else model, {
                "title": config.title or model_config(model)["name"], "render_size": render_size,
                "training": training_info(step), "metrics": {}})
    if world > 1:
        # Both ranks leave together: a rank that tears down gloo while its peer still talks can abort.
        dist.barrier()
        dist.destroy_process_group()
    return best_path
