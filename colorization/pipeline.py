"""The one inference pipeline: the CLI, the app, evaluation and the notebooks all call it.

The network runs on a copy whose short side is ``render_size``; only its ab is upsampled and
joined to the photo's own full-resolution L, so the result is as sharp as the input.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import cv2
import numpy as np
import torch
from PIL import Image

from .color import gray_display, lab_to_display, rgb_to_l
from .files import atomic_write
from .images import MAX_MEGAPIXELS, ImageError, as_float, as_uint8, read_image, to_rgb_array
from .models import activation_bytes_per_pixel, unwrap
from .paths import weights_dir
from .runtime import ACTIVATION_VARIABLE, check_render_size, choose_device, max_activation_bytes
from .weights import WeightsError, load_weights, read_metadata

__all__ = [
    "Colorizer",
    "Prepared",
    "prepare",
    "compose",
    "load_colorizer",
    "default_weights",
    "available_weights",
    "DEFAULT_RENDER_SIZE",
    "MAX_ASPECT",
    "render_shape",
]

DEFAULT_RENDER_SIZE = 256
# The network never sees more than render_size x (MAX_ASPECT * render_size) pixels: a photo longer than
# that (a 1 x 10,000 strip) is rendered with a shorter short side instead of an unbounded long one.
MAX_ASPECT = 4
# The process's peak memory in a forward pass on the CPU was 1.03-1.33 times the live tensors' peak that
# activation_bytes_per_pixel counts (oneDNN's reordered copies, the allocator): estimates include this margin.
_BACKEND_OVERHEAD = 1.35
ImageLike = Union[Image.Image, np.ndarray]


@dataclass
class Prepared:
    """A photo ready for colorization: its pixels, its Lab lightness, and alpha if it had one."""

    pixels: np.ndarray  # (H, W, 3) uint8 for 8-bit sources, else float32 in [0, 1]
    l: np.ndarray  # (H, W) float32 Lab L in [0, 100]
    alpha: Optional[np.ndarray]  # (H, W) uint8 or float32, or None

    @property
    def rgb(self) -> np.ndarray:
        """The input as float32 RGB in [0, 1]."""
        return as_float(self.pixels)

    @property
    def truth(self) -> np.ndarray:
        """The input as uint8 RGB: the ground truth when the input was in colour."""
        return as_uint8(self.pixels)

    @functools.cached_property
    def gray(self) -> Image.Image:
        """The gray baseline (a = b = 0): ``compose`` of zero ab, as every model output is composed, but
        from a table over L (:func:`~colorization.color.gray_display`, within one level)."""
        return _as_image(gray_display(self.l), self.alpha)


def prepare(image: ImageLike, max_megapixels: float = MAX_MEGAPIXELS) -> Prepared:
    """Turn any PIL image or array into :class:`Prepared`; raises ImageError for unusable input."""
    pixels, alpha = to_rgb_array(image, max_megapixels=max_megapixels)
    return Prepared(pixels=pixels, l=rgb_to_l(pixels), alpha=alpha)


def compose(l: np.ndarray, ab: np.ndarray, alpha: Optional[np.ndarray] = None) -> Image.Image:
    """Join full-resolution L (H, W) with ab (H, W, 2), fit to the sRGB gamut, return a PIL image."""
    lab = cv2.merge([np.ascontiguousarray(l, dtype=np.float32), np.ascontiguousarray(ab, dtype=np.float32)])
    return _as_image(lab_to_display(lab.reshape(l.shape + (3,))), alpha)


def _as_image(rgb: np.ndarray, alpha: Optional[np.ndarray]) -> Image.Image:
    if alpha is not None:
        return Image.fromarray(np.dstack([rgb, as_uint8(alpha)]), "RGBA")
    return Image.fromarray(rgb, "RGB")


def upsample_ab(ab: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """ab (h, w, 2) at the network's resolution to the photo's (H, W): bilinear, as richzhang's pipeline."""
    return cv2.resize(ab, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def render_shape(height: int, width: int, render_size: int) -> tuple[int, int]:
    """The (h, w) the network sees: short side ``render_size``, long side at most ``MAX_ASPECT`` times that,
    aspect kept, so its cost is bounded whatever the photo's shape."""
    scale = min(render_size / min(height, width), MAX_ASPECT * render_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class Colorizer:
    """A loaded model plus the pipeline around it. ``colorizer(image) -> PIL.Image``."""

    def __init__(self, model: torch.nn.Module, render_size: int = DEFAULT_RENDER_SIZE,
                 device: Union[str, torch.device] = "cpu", info: Optional[dict] = None):
        # channels_last: oneDNN's depthwise and 1x1 convolutions run faster on NHWC (CPU 23 -> 20 ms, cuDNN 3.4x).
        self.model = model.to(device, memory_format=torch.channels_last).eval()
        self.device = torch.device(device)
        self.render_size = render_size
        self.info = info or {}

    @property
    def title(self) -> str:
        return str(self.info.get("title", self.info.get("model", {}).get("name", "model")))

    @functools.cached_property
    def activation_bytes_per_pixel(self) -> Optional[float]:
        """The network's activation memory per input pixel (:func:`~colorization.models.activation_bytes_per_pixel`
        with the backend's measured overhead); None for a model built outside :func:`~colorization.build_model`."""
        per_pixel = activation_bytes_per_pixel(self.model)
        return None if per_pixel is None else per_pixel * _BACKEND_OVERHEAD

    def activation_bytes(self, shape: tuple[int, int]) -> float:
        """Estimated activation memory of one pass on an L of ``shape`` (h, w) at the render resolution, padded to
        the network's stride as its forward pads it; 0 when unknown."""
        stride = getattr(unwrap(self.model), "stride", 1)
        h, w = (-(-side // stride) * stride for side in shape)
        return (self.activation_bytes_per_pixel or 0.0) * h * w

    def check_render_size(self, size: int, shape: Optional[tuple[int, int]] = None) -> int:
        """``size`` if it is a valid render size whose activations fit in
        :func:`~colorization.runtime.max_activation_bytes`: for the render ``shape`` (h, w) of a photo, or without
        one for a square photo, the least any photo needs. Else ValueError (ImageError for a photo's shape)."""
        size = check_render_size(size)
        need, allowed = self.activation_bytes(shape or (size, size)), max_activation_bytes()
        if need > allowed:
            amount = f"about {need / 1e9:.1f} GB for the network's activations; at most {allowed / 1e9:g} GB"
            if shape is None:
                raise ValueError(f"render size {size} needs {amount} is allowed even on a square photo "
                                 f"({ACTIVATION_VARIABLE} raises it)")
            raise ImageError(f"at render size {size} the network would see {shape[1]}x{shape[0]} pixels of this "
                             f"photo and need {amount} is allowed ({ACTIVATION_VARIABLE} raises it); a smaller render "
                             "size would do")
        return size

    def l_small(self, l: np.ndarray, render_size: Optional[int] = None) -> np.ndarray:
        """L (H, W) resized to the network's resolution (:func:`render_shape`) at ``render_size``; ImageError
        when its activations would not fit in memory (:meth:`check_render_size`)."""
        size = check_render_size(int(render_size or self.render_size))
        h, w = l.shape
        rh, rw = render_shape(h, w, size)
        self.check_render_size(size, (rh, rw))
        # INTER_AREA averages when shrinking (no aliasing); upscaling tiny inputs is linear.
        return cv2.resize(l, (rw, rh), interpolation=cv2.INTER_AREA if rh < h else cv2.INTER_LINEAR)

    def predict_ab_small(self, l: np.ndarray, render_size: Optional[int] = None) -> np.ndarray:
        """ab (h, w, 2) in Lab units at the network's resolution (:func:`render_shape`) for L (H, W)."""
        return self._network(self.l_small(l, render_size))

    def predict_ab_from_small(self, l_small: np.ndarray,
                              hints: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
        """ab (h, w, 2) for L already at the network's resolution (:meth:`l_small`); ``hints``: (ab, weight) at
        that resolution (:func:`~colorization.hints.hints_at`), seen only by a network trained for hints."""
        return self._network(l_small, hints)

    @property
    def takes_hints(self) -> bool:
        """Whether the network itself was trained for user hints (``"hints": true`` in its metadata)."""
        return bool(getattr(self.model, "hints", False))

    @torch.inference_mode()
    def _network(self, l_small: np.ndarray, hints: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
        x = torch.from_numpy(l_small)[None, None].to(self.device, memory_format=torch.channels_last)
        h = None
        if hints is not None and self.takes_hints:
            h = torch.from_numpy(np.dstack(hints)).permute(2, 0, 1)[None].to(self.device)
        return self.model(x, hints=h)[0].float().permute(1, 2, 0).contiguous().cpu().numpy()

    def predict_ab(self, l: np.ndarray, render_size: Optional[int] = None) -> np.ndarray:
        """ab (H, W, 2) in Lab units for a full-resolution L (H, W), predicted at ``render_size``."""
        return upsample_ab(self.predict_ab_small(l, render_size), l.shape)

    def colorize_prepared(self, prepared: Prepared, render_size: Optional[int] = None, intensity: float = 1.0,
                          hints: Optional[ImageLike] = None, reference=None, reach: str = "object") -> Image.Image:
        """Colorize an already prepared photo (lets callers reuse the preparation)."""
        from .hints import reach_settings

        spread = reach_settings(reach)  # checked first: a wrong name fails before any work
        l_small = self.l_small(prepared.l, render_size)
        small_hints = None
        if hints is not None:
            from .hints import hints_at

            size = hints.size if isinstance(hints, Image.Image) else np.shape(hints)[1::-1]
            if tuple(size) != prepared.l.shape[::-1]:
                raise ValueError(f"hints must be an image of the photo's size, {prepared.l.shape[1]}x"
                                 f"{prepared.l.shape[0]}, got {size[0]}x{size[1]}")
            small_hints = hints_at(hints, l_small.shape)
        if reference is not None:
            from .reference import Reference, merge_hints, prepare_reference, reference_hints

            if not isinstance(reference, Reference):
                reference = prepare_reference(reference, l_small.shape)
            small_hints = merge_hints(small_hints, reference_hints(self, l_small, reference))
        ab = self._network(l_small, small_hints)
        if intensity != 1.0:  # scaled before upsampling: the same numbers, a fraction of the pixels
            ab = ab * np.float32(intensity)
        if small_hints is not None:
            from .hints import propagate

            # Also after a hint network: the propagation makes each hint's own pixels take its colour.
            ab = propagate(l_small, ab, *small_hints, **spread)
        return compose(prepared.l, upsample_ab(ab, prepared.l.shape), prepared.alpha)

    def __call__(self, image: ImageLike, render_size: Optional[int] = None, intensity: float = 1.0,
                 hints: Optional[ImageLike] = None, reference=None, reach: str = "object") -> Image.Image:
        """Colorize a PIL image or array of any mode; returns RGB (RGBA if it had alpha) at the input size.

        ``intensity`` scales the predicted ab (1.0 = the model's output, 0 = gray). ``hints``: an RGBA image of
        the photo's size whose opaque pixels carry wanted colours (:func:`colorization.hints.hint_image` makes
        one from points); they are spread along the photo's edges over the prediction (only their chroma is used).
        ``reference``: a colour photo (image, array or path) whose confidently matched colours become hints
        (:mod:`colorization.reference`); the user's ``hints`` win where both give one. ``reach``: "object" (a hint
        colours its own region and stops at its edges) or "photo" (it spreads over the whole photo along its strong
        edges: a colour cast of the whole photo), :data:`colorization.hints.REACH`.
        """
        return self.colorize_prepared(prepare(image), render_size, intensity, hints, reference, reach)

    def colorize_files(self, paths: Iterable[Union[str, os.PathLike]], out_dir: Union[str, os.PathLike],
                       render_size: Optional[int] = None, progress: bool = True,
                       hints: Optional[ImageLike] = None, reference=None,
                       reach: str = "object") -> Iterator[tuple[Path, Union[Path, ImageError]]]:
        """Colorize many files into ``out_dir`` as PNG; yields (input, output path or the ImageError).

        ``hints`` (see :meth:`__call__`, with ``reach``) must have the size of every photo: in practice, one photo.
        ``reference`` (see :meth:`__call__`) is read once and serves every photo.
        """
        from tqdm.auto import tqdm

        if reference is not None:
            from .reference import Reference, prepare_reference

            if not isinstance(reference, Reference):
                size = check_render_size(int(render_size or self.render_size))
                reference = prepare_reference(reference, (size, size))

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [Path(p) for p in paths]
        used: set[str] = set()
        for path in tqdm(paths, desc="colorize", unit="img", disable=not progress):
            try:
                image = read_image(path)
            except ImageError as exc:
                yield path, exc
                continue
            try:
                result = self(image, render_size, hints=hints, reference=reference, reach=reach)
            except ImageError as exc:  # e.g. too long a photo for the render size's memory: say which photo
                yield path, ImageError(f"{path}: {exc}")
                continue
            name = path.stem
            while name in used:  # two inputs with one stem never overwrite each other
                name += "_"
            used.add(name)
            target = out_dir / f"{name}.png"
            try:  # to a temporary name, then renamed: Ctrl-C or a kill never leaves a half-written PNG
                # format given: the temporary name has no .png, and PIL would not read one from "..png"
                atomic_write(target, lambda tmp: result.save(tmp, format="PNG"))
            except OSError as exc:  # a full disk or a read-only folder ends the batch with the file named
                raise OSError(f"cannot write {target}: {exc.strerror or exc}") from None
            yield path, target


def available_weights(folder: Union[str, os.PathLike, None] = None) -> list[Path]:
    """Weights files in ``folder`` (default: :func:`~colorization.paths.weights_dir`), best first: by the mean PSNR
    gain over gray on the evaluation folders recorded in each file's metadata (files without one last, by name)."""
    folder = Path(folder) if folder is not None else weights_dir()
    return sorted(folder.glob("*.safetensors"), key=lambda p: (-recorded_gain(p), p.name))


def recorded_gain(path: Union[str, os.PathLike]) -> float:
    """The mean PSNR gain over gray (dB) on the evaluation folders in a file's ``metrics.evaluation``; -inf if none."""
    try:
        folders = read_metadata(path)["metrics"]["evaluation"]["folders"]
        gains = [float(f["model"]["psnr"]) - float(f["gray"]["psnr"]) for f in folders.values()]
    except (WeightsError, KeyError, TypeError, ValueError, AttributeError):
        return -math.inf
    return sum(gains) / len(gains) if gains and all(map(math.isfinite, gains)) else -math.inf


def default_weights() -> Path:
    """The best weights shipped in ``weights/``; raises WeightsError when there are none."""
    files = available_weights()
    if not files:
        raise WeightsError(f"no weights in {weights_dir()}; pass --weights or train a model first")
    return files[0]


def load_colorizer(path: Union[str, os.PathLike, None] = None, device: Union[str, torch.device, None] = None,
                   render_size: Optional[int] = None, temperature: Optional[float] = None) -> Colorizer:
    """Load a weights file (default: the best shipped one) into a ready :class:`Colorizer`.

    ``temperature`` replaces a classification model's annealed-mean temperature (ignored otherwise). A render size
    (``render_size``, else the file's own) whose activations would not fit in memory even on a square photo is
    refused (:meth:`Colorizer.check_render_size`): ValueError, WeightsError when it is the file's.
    """
    path = Path(path) if path is not None else default_weights()
    device = choose_device(device)
    model, meta = load_weights(path, device)
    if temperature is not None and model.output == "classification":
        if not 0 < temperature < math.inf:  # NaN fails too: it gave a near-black image
            raise ValueError(f"temperature must be a positive number, got {temperature}")
        model.temperature = float(temperature)
    meta["path"] = str(path)
    colorizer = Colorizer(model, render_size or int(meta.get("render_size", DEFAULT_RENDER_SIZE)), device, meta)
    try:
        colorizer.check_render_size(colorizer.render_size)
    except ValueError as exc:
        if render_size:
            raise
        raise WeightsError(f"{path}: its metadata's {exc}") from None
    return colorizer
