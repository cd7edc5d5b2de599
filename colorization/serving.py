"""Serving mechanics for the demo, without Gradio: limits from the environment, checks of the raw values an API
request may send, the files a request may read and write, the work of each request, what it costs, and the lanes
that run it on a few threads while the requests waiting for them hold none, each session served its share.

The app (``app.py``) keeps the page: it turns :class:`RequestError` into the message a user sees and formats the
results. Every refusal is one sentence, the same whatever a hostile request sends.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import io
import itertools
import math
import os
import re
import sys
import tempfile
import threading
import zipfile
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from .archive import ArchiveError, ZipLimits, extract_zip, is_zip, member_name
from .color import is_grayish
from .evaluation import score_prepared
from .files import atomic_write
from .hints import MAX_SOLVE_PIXELS, rgba_hints, suggested_colours
from .images import read_image
from .pipeline import Colorizer, Prepared, prepare, render_shape
from .video import VideoBudget, VideoStats, colorize_video

__all__ = [
    "COSTS",
    "PREVIEW_SIDE",
    "Batch",
    "BatchItem",
    "BatchResult",
    "Comparison",
    "Preview",
    "Variant",
    "colorize_batch",
    "compare",
    "compare_seconds",
    "plan_batch",
    "preview_of",
    "NOT_UPLOADED",
    "Busy",
    "ClipResult",
    "Costs",
    "Header",
    "Lane",
    "Lanes",
    "Limits",
    "PhotoResult",
    "RequestError",
    "architecture",
    "choice",
    "colorize_clip_upload",
    "colorize_seconds",
    "colorize_upload",
    "flag",
    "gray_seconds",
    "gray_version",
    "hint_files",
    "live_preview",
    "live_seconds",
    "low_priority",
    "number",
    "painted_share",
    "read_header",
    "read_hint_layers",
    "render_size",
    "safe_stem",
    "reference_of",
    "reference_seconds",
    "session_key",
    "show_matches",
    "share_cpu",
    "store_blobs",
    "stored_file",
    "suggest_at",
    "suggest_seconds",
    "upload_files",
    "upload_path",
    "where_to_click",
]


Size = tuple[int, int]  # (width, height)


class RequestError(ValueError):
    """A request refused or failed for a reason its sender should read; the message says what, in one sentence."""


class Busy(RequestError):
    """A request refused because its lane, or its session's share of the lane, is full; the message says which."""


# --- Limits -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """What one host accepts and how much it runs at once; the defaults fit a free 2-vCPU Space, where the worst
    accepted request costs a worker a few seconds (bench/RESULTS.md). :meth:`from_environment` reads the
    ``COLORIZE_*`` variables a bigger host sets."""

    max_megapixels: float = 8.0  # per photo and hint layer
    max_upload_mb: float = 25.0  # per file
    concurrency: int = 2  # ordinary requests run at once (the ordinary lane's workers)
    # Requests whose work is estimated (Costs) over this many seconds of one thread go to the big lane: one at a
    # time, at low CPU priority, so a few cheap uploads of costly requests cannot take the workers from everyone
    # else. A 1024x768 colour photo at render size 128 is 0.3 s; 1 MP at render size 512, or 2.5 MP at 256, are over.
    big_seconds: float = 1.0
    # Requests wait for their lane holding no thread, and the queue admits only what the lanes hold: the big lane at
    # most big_queue requests (running and waiting, about 14 s of 8 MP photos), a session at most per_session places
    # in a lane (a page may have a clip, a new photo's gray version and its colorization in flight), the queue at
    # most queue_size waiting. Beyond these a request is refused at once.
    big_queue: int = 6
    per_session: int = 3
    queue_size: int = 32
    # A clip costs about a second per 20 frames of 640x360 on 2 threads (bench/RESULTS.md: 21.6 frames/s), so 20 s
    # of 24 frames/s take about 25 s: its length and frame size are bounded, and it takes the big lane.
    max_video_seconds: float = 20.0
    max_video_megapixels: float = 0.6
    # The work of a clip is counted as its frames are decoded (a header's duration and frame rate can lie or be
    # missing): at most 600 frames (20 s at 30 frames/s) and 600 frames' worth of the largest accepted frame, unless
    # COLORIZE_MAX_VIDEO_FRAMES and COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS say otherwise.
    video_budget: VideoBudget = field(default_factory=lambda: VideoBudget(600, 600 * 0.6))
    # Many photos at once (files or ZIPs of them): their count, their megapixels and bytes in all, checked from the
    # headers and ZIP directories before any is decoded. 100 MP is at most about 35 s of the big lane's one thread: ten
    # 8 MP JPEGs took 5.8 s at the default model's render size 128 on one thread of the idle 2-vCPU AMD EPYC VM and
    # 27.4 s at load average 7 (COSTS, measured at load 4, estimated 19.4 s; `python bench/benchmark.py batch`,
    # bench/RESULTS.md); their ZIP of PNGs was 66 MB.
    max_batch_photos: int = 50
    max_batch_megapixels: float = 100.0
    max_batch_mb: float = 250.0
    render_sizes: tuple[int, int] = (128, 512)  # the slider's range, in steps of 32
    max_intensity: float = 2.0
    max_hint_layers: int = 8  # the editor sends one; the API may send a few, each a decode

    VARIABLES = {"max_megapixels": "COLORIZE_MAX_MEGAPIXELS", "max_upload_mb": "COLORIZE_MAX_UPLOAD_MB",
                 "concurrency": "COLORIZE_CONCURRENCY", "big_seconds": "COLORIZE_BIG_SECONDS",
                 "big_queue": "COLORIZE_BIG_QUEUE", "per_session": "COLORIZE_PER_SESSION",
                 "queue_size": "COLORIZE_QUEUE_SIZE", "max_video_seconds": "COLORIZE_MAX_VIDEO_SECONDS",
                 "max_video_megapixels": "COLORIZE_MAX_VIDEO_MEGAPIXELS",
                 "max_batch_photos": "COLORIZE_MAX_BATCH_PHOTOS",
                 "max_batch_megapixels": "COLORIZE_MAX_BATCH_MEGAPIXELS", "max_batch_mb": "COLORIZE_MAX_BATCH_MB"}

    @classmethod
    def from_environment(cls) -> "Limits":
        """The defaults, with each ``COLORIZE_*`` variable that is set; ValueError naming one that is not a positive
        number (a whole one for counts; ``COLORIZE_BIG_SECONDS`` may be 0: every request in the big lane)."""
        defaults, values = cls(), {}
        for name, variable in cls.VARIABLES.items():
            text = os.environ.get(variable)
            if text is None:
                continue
            kind = type(getattr(defaults, name))
            try:
                value = kind(text)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and (value > 0 or (name == "big_seconds" and value == 0))):
                whole = "whole " if kind is int else ""
                raise ValueError(f"{variable} must be a positive {whole}number, got {text!r}")
            values[name] = value
        megapixels = values.get("max_video_megapixels", defaults.max_video_megapixels)
        budget = VideoBudget.from_environment(frames=600, megapixels=600 * megapixels)
        return cls(**values, video_budget=budget)

    @property
    def photos_admitted(self) -> int:
        """Photo requests the queue lets into the lanes at once: the big lane's places plus, for the ordinary lane, one
        running and one waiting per worker, so that big photos can never hold the places ordinary photos need."""
        return self.big_queue + 2 * self.concurrency

    @property
    def clips_admitted(self) -> int:
        """Clips let into the big lane at once; the others wait in the queue, leaving big photos half the lane."""
        return max(1, self.big_queue // 2)

    @property
    def zip_limits(self) -> ZipLimits:
        """What one uploaded ZIP may declare: a few entries per photo allowed (folders, stray files), each member no
        larger than an upload, all of them no more than a batch's bytes."""
        return ZipLimits(entries=4 * self.max_batch_photos, member_bytes=int(self.max_upload_mb * 2**20),
                         total_bytes=int(self.max_batch_mb * 2**20))

    @property
    def clip_seconds(self) -> float:
        """What a clip counts for in its session's share: the most it may cost, its budget of frames at about 20
        frames/s."""
        return (self.video_budget.frames or 600) / 20


def share_cpu(concurrency: int) -> None:
    """Give each of ``concurrency`` requests its share of the CPU threads: oversubscribed OpenMP threads spin-wait,
    which on 2 busy cores made one forward pass 30x slower (0.09 s -> 3 s)."""
    torch.set_num_threads(max(1, torch.get_num_threads() // concurrency))
    cv2.setNumThreads(torch.get_num_threads())  # OpenCV's own pool would also escape the big lane's low priority


# --- Checks of raw API values (an API request may send any JSON) ----------------------------------------------------

def number(value: Any, name: str, low: float, high: float) -> float:
    """A finite number in [low, high], or a RequestError naming the setting (``true`` is not 1)."""
    try:
        if isinstance(value, bool):  # float(True) is 1.0
            raise TypeError
        result = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number between {low:g} and {high:g}, got {value!r:.40}") from None
    if not (math.isfinite(result) and low <= result <= high):
        raise RequestError(f"{name} must be between {low:g} and {high:g}, got {value!r:.40}")
    return result


def render_size(value: Any, sizes: tuple[int, int] = Limits.render_sizes, step: int = 32) -> int:
    """A render size from the slider's range and step (Gradio's own slider check is skipped with preprocess=False)."""
    size = number(value, "Render size", *sizes)
    if size % step:
        raise RequestError(f"Render size must be a multiple of {step}, got {value!r:.40}")
    return int(size)


def choice(value: Any, name: str, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options``, else a RequestError listing them."""
    options = list(options)
    if not isinstance(value, str) or value not in options:
        raise RequestError(f"Unknown {name} {value!r:.60}; choose one of: {', '.join(options)}.")
    return value


def flag(value: Any, name: str) -> bool:
    """``value`` if it is true or false (not 1, not "yes"), else a RequestError naming the setting."""
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false, got {value!r:.40}")
    return value


# --- Files a request reads and writes -------------------------------------------------------------------------------

# Gradio checks only file objects that carry "meta", and the app takes the raw payload (preprocess=False), so
# {"path": "/etc/..."} would be read as given. Every path a request reads must lie in the folder where Gradio keeps
# the app's uploads, examples and results; every refusal reads the same, so it does not tell which files exist.
NOT_UPLOADED = "That file was not uploaded to this app; upload it again."


def stored_file(path: Any, folder: str) -> str:
    """``path`` with its links resolved, if it is a file inside ``folder`` (Gradio's upload and cache folder);
    else a RequestError that does not say whether the path exists."""
    try:
        real, folder = os.path.realpath(path), os.path.realpath(folder)
        if os.path.commonpath([real, folder]) == folder and os.path.isfile(real):
            return real
    except (TypeError, ValueError, OSError):  # not a string, a NUL byte, a path too long...
        pass
    raise RequestError(NOT_UPLOADED)


def upload_path(value: Any, folder: str, missing: str = "Upload a photo first.") -> str:
    """The stored file of an upload's value (``{"path": ...}``): :func:`stored_file`, or ``missing`` for no upload."""
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        raise RequestError(missing)
    return stored_file(value["path"], folder)


def upload_files(value: Any, folder: str, max_files: int = Limits.max_batch_photos) -> list[tuple[str, str]]:
    """The stored files of a multiple-file upload's value (``[{"path": ..., "orig_name": ...}, ...]``), as (path,
    name as sent) pairs; a RequestError for anything else, or more than ``max_files``."""
    if not isinstance(value, list) or not value:
        raise RequestError("Upload one or more photos, or a ZIP of photos, first.")
    if len(value) > max_files:  # each is a file to check: a million would cost minutes before any limit
        raise RequestError(f"{len(value)} files sent; at most {max_files} photos are colorized at once.")
    if not all(isinstance(file, dict) and isinstance(file.get("path"), str) for file in value):
        raise RequestError("Files must be uploads: [{\"path\": ...}, ...].")
    return [(stored_file(file["path"], folder), str(file.get("orig_name") or Path(file["path"]).name))
            for file in value]


def hint_files(value: Any, folder: str, max_layers: int = Limits.max_hint_layers) -> list[str]:
    """The stored files of the painted layers in an image editor's value (``{"layers": [file, ...]}``); [] for none."""
    if value is None:
        return []
    layers = value.get("layers") if isinstance(value, dict) else None
    if isinstance(layers, list) and len(layers) > max_layers:  # each costs a decode: a thousand would buy minutes
        raise RequestError(f"Hints may have at most {max_layers} layers, got {len(layers)}.")
    if isinstance(layers, list) and all(isinstance(layer, dict) and isinstance(layer.get("path"), str)
                                        for layer in layers):
        return [stored_file(layer["path"], folder) for layer in layers]
    raise RequestError("Hints must be an image editor value: {\"layers\": [RGBA image files of the photo's size]}.")


def store_blobs(layers: Sequence[bytes], root: str, max_layers: int = Limits.max_hint_layers) -> list[str]:
    """Hint layers a page sent as bytes (an image editor's painted layers), written into a fresh folder inside
    ``root`` to be read like uploads."""
    if len(layers) > max_layers:
        raise RequestError(f"Hints may have at most {max_layers} layers, got {len(layers)}.")
    if not layers:
        return []
    folder = _output_folder(root)
    for i, data in enumerate(layers):
        (folder / f"layer{i}.png").write_bytes(bytes(data))
    return [str(folder / f"layer{i}.png") for i in range(len(layers))]


def safe_stem(name: str) -> str:
    """A file name stem that any file system accepts, from whatever a browser sent as an upload's name."""
    return re.sub(r"[^\w.-]+", "_", Path(name.replace("\0", "")).stem)[:64].strip("._") or "photo"


def _output_folder(root: str) -> Path:
    """A fresh folder inside ``root`` (Gradio's cache) for one request's results: no two requests share a file."""
    return Path(tempfile.mkdtemp(dir=root))


def _named(message: str, names: Mapping[str, str]) -> str:
    """``message`` with each server path replaced by the name its sender knows it by."""
    for path, name in names.items():
        message = message.replace(path, name)
    return message


# --- Hint layers ----------------------------------------------------------------------------------------------------

def read_hint_layers(files: Sequence[str], size: Size, max_megapixels: float) -> Optional[Image.Image]:
    """Painted hint layers (RGBA files) composited into one RGBA image of the photo's ``size`` (a canvas of another
    size is scaled to it); None for no layers. ImageError or ValueError (no transparency) name the file."""
    hints = None
    for file in files:
        layer = rgba_hints(read_image(file, max_megapixels))
        if layer.size != size:
            layer = layer.resize(size, Image.Resampling.NEAREST)
        hints = layer if hints is None else Image.alpha_composite(hints, layer)
    return hints


def painted_share(hints: Image.Image) -> float:
    """The share of a hint image's pixels that are painted (alpha over one half)."""
    alpha = hints.getchannel("A")
    return sum(alpha.point(lambda a: 255 if a > 127 else 0).histogram()[255:]) / (hints.width * hints.height)


# --- The work of each request (run in a lane) -----------------------------------------------------------------------

@dataclass(frozen=True)
class PhotoResult:
    """One colorized photo: its PNGs, the share of it painted with hints, its scores if it was a colour upload
    (``score_prepared``'s record), and what reading it noted."""

    colorized: Path
    gray: Path
    painted: float
    scores: Optional[dict]
    notes: list[str]


def colorize_upload(colorizer: Colorizer, path: str, name: str, root: str, size: int, intensity: float = 1.0,
                    hints: Sequence[str] = (), max_megapixels: float = Limits.max_megapixels,
                    reach: str = "object", reference: Optional[str] = None) -> PhotoResult:
    """Colorize the stored photo ``path`` (sent as ``name``) with the painted hint layers ``hints`` (reaching as far
    as ``reach`` says: :data:`colorization.hints.REACH`) and the colours a stored ``reference`` photo gives, score it
    if it is
    in colour, and write ``<name>_colorized.png`` and ``<name>_gray.png`` in a fresh folder inside ``root``.
    A failure is a RequestError naming the upload and the layers as their sender knows them."""
    names = {path: name, **{file: f"hint layer {i}" for i, file in enumerate(hints, 1)},
             **({reference: "the reference"} if reference else {})}
    try:  # ImageError is a ValueError whose message says what is wrong
        photo = read_image(path, max_megapixels)
        ref = reference_of(reference, max_megapixels) if reference else None
        prepared = prepare(photo, max_megapixels)
        painted = read_hint_layers(hints, photo.size, max_megapixels)
        share = painted_share(painted) if painted else 0.0
        painted = painted if share > 0 else None  # an untouched canvas is no hint
        if is_grayish(prepared.pixels):
            result, scores = colorizer.colorize_prepared(prepared, size, intensity, painted, ref, reach), None
        else:
            result, scores = score_prepared(colorizer, prepared, size, intensity, painted, ref, reach)
        folder, stem = _output_folder(root), safe_stem(name)
        out, gray = folder / f"{stem}_colorized.png", folder / f"{stem}_gray.png"
        result.save(out, compress_level=1)  # several times faster than the default level, for a larger file
        prepared.gray.save(gray, compress_level=1)
    except (ValueError, OSError) as exc:
        raise RequestError(_named(str(exc), names)) from None
    except MemoryError:
        raise RequestError("The server ran out of memory for this photo; try a smaller one.") from None
    return PhotoResult(out, gray, share, scores, [_named(note, names) for note in photo.info.get("notes", [])])


def gray_version(path: str, root: str, max_megapixels: float = Limits.max_megapixels) -> Path:
    """The stored photo ``path``'s gray version, as ``gray.png`` in a fresh folder inside ``root``."""
    try:
        prepared = prepare(read_image(path, max_megapixels), max_megapixels)
        gray = _output_folder(root) / "gray.png"
        prepared.gray.save(gray, compress_level=1)
    except (ValueError, OSError) as exc:
        raise RequestError(_named(str(exc), {path: "the photo"})) from None
    return gray


def suggest_at(colorizer: Colorizer, path: str, point: tuple[int, int], size: int, count: int = 6,
               max_megapixels: float = Limits.max_megapixels) -> list[tuple[str, float]]:
    """The ``count`` colours a classification model finds likeliest at ``point`` (x, y) of the stored photo ``path``,
    as (``#rrggbb``, share), likeliest first (:func:`~colorization.hints.suggested_colours`)."""
    try:
        l = prepare(read_image(path, max_megapixels), max_megapixels).l
        return suggested_colours(colorizer, l, point, count, size)
    except (ValueError, OSError) as exc:
        raise RequestError(_named(str(exc), {path: "the photo"})) from None


def where_to_click(colorizer: Colorizer, path: str, root: str, count: int = 5,
                   max_megapixels: float = Limits.max_megapixels) -> tuple[Path, list[tuple[int, int]]]:
    """The stored photo ``path``'s gray version with where a colour would help most tinted over it and its ``count``
    best points numbered (:mod:`colorization.placement`'s "region" map of a classification model's uncertainty), as a
    JPEG of the photo's size in a fresh folder inside ``root``; and those points (x, y), best first. Five, because
    that map beats random placement clearly up to 5 hints, by less at 10 (experiments/hint_placement)."""
    from PIL import ImageDraw

    from .placement import overlay, pick_points

    try:
        prepared = prepare(read_image(path, max_megapixels), max_megapixels)
        over = overlay(colorizer, prepared.l, "region")
        points = pick_points(over, count)
        score = over.at_photo_size()[..., None]
        heat = cv2.applyColorMap((score * 255).astype("uint8"), cv2.COLORMAP_INFERNO)[..., ::-1]
        gray = np.asarray(prepared.gray.convert("RGB"), np.float32)
        shown = heat.astype(np.float32)  # gray + 0.6 score (heat - gray), in place: an 8 MP photo stays ~250 MB
        shown -= gray
        shown *= 0.6 * score
        shown += gray
        shown = Image.fromarray(shown.round().astype("uint8"))
        draw, radius = ImageDraw.Draw(shown), max(6, min(shown.size) // 40)
        for number, (x, y) in enumerate(points, 1):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill="white", outline="black",
                         width=max(1, radius // 6))
            draw.text((x, y), str(number), fill="black", anchor="mm", font_size=int(radius * 1.4))
        out = _output_folder(root) / "where_to_click.jpg"
        shown.save(out, quality=90)
    except (ValueError, OSError) as exc:
        raise RequestError(_named(str(exc), {path: "the photo"})) from None
    return out, points


@dataclass(frozen=True)
class ClipResult:
    """One colorized clip: the MP4, what colorizing it measured, and what reading it noted."""

    path: Path
    stats: VideoStats
    notes: list[str]


def colorize_clip_upload(colorizer: Colorizer, path: str, name: str, root: str, size: int, temporal: bool = True,
                         limits: Optional[Limits] = None,
                         progress: Optional[Callable[[int, Optional[int]], None]] = None,
                         reference: Optional[str] = None) -> ClipResult:
    """Colorize the stored clip ``path`` (sent as ``name``) into ``<name>_colorized.mp4`` in a fresh folder inside
    ``root``, within ``limits``' length, frame size and budget of work, every frame with the colours a stored
    ``reference`` photo gives; a failure is a RequestError naming the upload."""
    limits = limits or Limits()
    out = _output_folder(root) / f"{safe_stem(name)}_colorized.mp4"
    names = {path: name, **({reference: "the reference"} if reference else {})}
    try:
        ref = reference_of(reference, limits.max_megapixels) if reference else None
        stats = colorize_video(colorizer, path, out, temporal, render_size=size, max_seconds=limits.max_video_seconds,
                               max_megapixels=limits.max_video_megapixels, budget=limits.video_budget,
                               progress=progress, reference=ref)
    except (ValueError, OSError) as exc:  # VideoError is a ValueError
        raise RequestError(_named(str(exc), names)) from None
    return ClipResult(out, stats, [_named(note, {path: name}) for note in stats.notes])


# --- Many photos at once ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch: the name its result gets (from the upload's name, or its path inside the ZIP), the stored
    file, its header (None: Pillow cannot open it, and decoding it will say why) and the name it was sent as."""

    name: str
    path: str
    header: Optional[Header]
    sent: str


@dataclass(frozen=True)
class Batch:
    """The photos of one batch request, checked against the limits, with what was left out and why."""

    items: list[BatchItem]
    notes: list[str]
    megapixels: float

    def seconds(self, size: int, architecture: str, costs: Optional[Costs] = None) -> float:
        """Estimated seconds of one thread to colorize every photo of the batch at ``size``."""
        costs = costs or COSTS
        return sum(costs.colorize(item.header.size, size, architecture, scored=False)
                   for item in self.items if item.header)


def _unique(name: str, taken: set[str]) -> str:
    """``name`` made unique among ``taken`` (``photo``, ``photo_2``, ...), and added to it."""
    result, n = name, 1
    while result.lower() in taken:
        n += 1
        result = f"{name}_{n}"
    taken.add(result.lower())
    return result


def plan_batch(files: Sequence[tuple[str, str]], root: str, limits: Limits = Limits()) -> Batch:
    """The photos among the stored uploads ``files`` ((path, name as sent) pairs): each image file, and each file
    inside each ZIP (opened with :func:`~colorization.archive.extract_zip` into a fresh folder inside ``root``).
    A RequestError when there is nothing to colorize, or more photos, megapixels or bytes than ``limits`` allow;
    a file that is neither an image nor a ZIP, or a member left out of its ZIP, is named in the notes."""
    if not files:
        raise RequestError("Upload one or more photos, or a ZIP of photos, first.")
    if len(files) > limits.max_batch_photos:
        raise RequestError(f"{len(files)} files sent; at most {limits.max_batch_photos} photos are colorized at once.")
    items, notes, taken, sent = [], [], set(), 0
    for path, name in files:
        header = read_header(path)
        sent += os.path.getsize(path)
        if header is None and is_zip(path):
            try:
                members, left_out = extract_zip(path, _output_folder(root), limits.zip_limits)
            except ArchiveError as exc:
                raise RequestError(f"The ZIP {safe_stem(name)} {exc}.") from None
            notes += [f"{safe_stem(name)}.zip: {note}" for note in left_out]
            for member in members:
                sent += member.path.stat().st_size
                stem = member_name(str(Path(member.name).with_suffix("")))
                items.append(BatchItem(_unique(stem, taken), str(member.path), read_header(str(member.path)),
                                       f"{safe_stem(name)}.zip/{member.name}"))
        else:  # an image, or a file that is neither: decoding it says which and why
            items.append(BatchItem(_unique(safe_stem(name), taken), path, header, Path(name).name))
        if len(items) > limits.max_batch_photos:
            raise RequestError(f"More than {limits.max_batch_photos} photos sent; at most {limits.max_batch_photos} "
                               "are colorized at once.")
        if sent > limits.max_batch_mb * 2**20:
            raise RequestError(f"More than {limits.max_batch_mb:g} MB of photos sent; send fewer at once.")
    if not items:
        raise RequestError("No photos found in what was sent" + "".join(f"; {note}" for note in notes[:3]) + ".")
    # A photo over the per-photo limit is refused when it is read, so it costs nothing here.
    megapixels = sum(_megapixels(item.header.size) for item in items
                     if item.header and _megapixels(item.header.size) <= limits.max_megapixels)
    if megapixels > limits.max_batch_megapixels:
        raise RequestError(f"These photos hold {megapixels:.0f} megapixels; at most {limits.max_batch_megapixels:g} "
                           "are colorized at once. Send fewer or smaller photos.")
    return Batch(items, notes, megapixels)


@dataclass(frozen=True)
class BatchResult:
    """A colorized batch: the ZIP of PNGs, how many photos it holds, and a note for each photo left out."""

    path: Path
    colorized: int
    notes: list[str]


def colorize_batch(colorizer: Colorizer, batch: Batch, root: str, size: int, intensity: float = 1.0,
                   max_megapixels: float = Limits.max_megapixels,
                   progress: Optional[Callable[[int, int], None]] = None) -> BatchResult:
    """Colorize each photo of ``batch`` at full resolution into ``colorized.zip`` (``<name>_colorized.png`` each) in
    a fresh folder inside ``root``. A photo that cannot be colorized is named in the notes and the others go on; a
    RequestError when none could be. The ZIP appears whole or not at all."""
    out = _output_folder(root) / "colorized.zip"
    notes, done = list(batch.notes), 0

    def write(tmp: str) -> None:
        nonlocal done
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # PNGs do not compress further
            for i, item in enumerate(batch.items):
                try:
                    photo = read_image(item.path, max_megapixels)
                    result = colorizer.colorize_prepared(prepare(photo, max_megapixels), size, intensity)
                    png = io.BytesIO()
                    result.save(png, "PNG", compress_level=1)
                    archive.writestr(f"{item.name}_colorized.png", png.getvalue())
                    notes.extend(f"{item.sent}: {note}" for note in photo.info.get("notes", []))
                    done += 1
                except (ValueError, OSError) as exc:  # ImageError: the message says what is wrong with the file
                    notes.append(_named(str(exc), {item.path: item.sent}))
                except MemoryError:
                    notes.append(f"{item.sent}: the server ran out of memory for this photo")
                if progress:
                    progress(i + 1, len(batch.items))

    try:
        atomic_write(out, write)
    except OSError as exc:
        raise RequestError(f"The results could not be written: {exc}") from None
    if not done:
        out.unlink(missing_ok=True)
        raise RequestError(f"None of the {len(batch.items)} photos could be colorized: " + "; ".join(notes[:3]) + ".")
    return BatchResult(out, done, notes)


# --- Side by side ---------------------------------------------------------------------------------------------------

PREVIEW_SIDE = 1024  # a comparison is judged by eye on a screen: the photo's longer side is brought down to this


@dataclass(frozen=True)
class Variant:
    """One way to colorize a photo, for a comparison: a label, the colorizer and its render size."""

    label: str
    colorizer: Colorizer
    size: int


@dataclass(frozen=True)
class Comparison:
    """A photo colorized several ways, as (PNG, caption) pairs in the order asked, gray first; the scores of each
    (``score_prepared``'s records, by label) when the photo was in colour; what reading it noted."""

    images: list[tuple[Path, str]]
    scores: Optional[dict[str, dict]]
    notes: list[str]


def _caption(label: str, scores: Optional[dict]) -> str:
    if scores is None:
        return label
    return f"{label}: {scores['psnr']:.2f} dB, colourfulness {scores['colorfulness']:.1f}"


def compare(variants: Sequence[Variant], path: str, name: str, root: str, intensity: float = 1.0,
            max_megapixels: float = Limits.max_megapixels, side: int = PREVIEW_SIDE) -> Comparison:
    """The stored photo ``path`` colorized by each of ``variants`` at ``side`` pixels on its longer side, as PNGs in
    a fresh folder inside ``root``; a colour photo is scored too (PSNR against its original, colourfulness), beside
    its gray version and the original. A failure is a RequestError naming the upload."""
    try:
        preview = preview_of(path, root, max_megapixels, side)  # the live preview's, when the page made one
        prepared, notes = preview.prepared, [_named(note, {path: name}) for note in preview.notes]
        if is_grayish(prepared.pixels):
            scores = None
            shown = [("Gray", prepared.gray)] + [
                (v.label, v.colorizer.colorize_prepared(prepared, v.size, intensity)) for v in variants]
        else:
            scored = [(v.label, *score_prepared(v.colorizer, prepared, v.size, intensity)) for v in variants]
            scores = {label: record for label, _, record in scored}
            record = scored[0][2]  # the gray version's and the original's scores are every variant's
            shown = [(_caption("Gray", record["gray"]), prepared.gray)]
            shown += [(_caption(label, record["model"]), result) for label, result, record in scored]
            shown.append((f"Original: colourfulness {record['ground_truth']['colorfulness']:.1f}",
                          Image.fromarray(prepared.truth)))
        folder, images = _output_folder(root), []
        for i, (caption, image) in enumerate(shown):
            file = folder / f"{safe_stem(name)}_{i}.png"
            image.save(file, compress_level=1)
            images.append((file, caption))
    except (ValueError, OSError) as exc:
        raise RequestError(_named(str(exc), {path: name})) from None
    except MemoryError:
        raise RequestError("The server ran out of memory for this photo; try a smaller one.") from None
    return Comparison(images, scores, notes)


def compare_seconds(path: str, variants: Sequence[tuple[int, str]], costs: Optional[Costs] = None,
                    side: int = PREVIEW_SIDE) -> float:
    """Estimated seconds to compare the photo ``path`` under ``variants`` ((render size, architecture) pairs): one
    decode at full size, then each colorized and scored at ``side``."""
    costs, header = costs or COSTS, read_header(path)
    if header is None:
        return 0.0
    preview = _preview_size(header.size, side)
    return _megapixels(header.size) * costs.decode + sum(
        costs.colorize(preview, size, arch, scored=not header.gray) for size, arch in variants)


# --- Live preview while painting ------------------------------------------------------------------------------------

def _preview_size(size: Size, side: int) -> Size:
    """A photo's size brought down to ``side`` pixels on its longer side (never up), about as ``Image.thumbnail``
    brings it: for estimates."""
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


@dataclass(frozen=True)
class Preview:
    """A photo brought down to screen size for live colorizing and comparing: prepared once, with its gray version
    as a JPEG and what reading it noted."""

    prepared: Prepared
    gray: Path
    notes: tuple[str, ...] = ()


_PREVIEWS: "OrderedDict[tuple[str, int], Preview]" = OrderedDict()  # by (stored path, longer side), newest last
_PREVIEWS_LOCK = threading.Lock()
PREVIEWS_KEPT = 16  # a screen-size photo's L is 3 MB: the few photos being painted now


def preview_of(path: str, root: str, max_megapixels: float = Limits.max_megapixels, side: int = PREVIEW_SIDE) -> Preview:
    """The stored photo ``path`` at ``side`` pixels on its longer side, prepared, and its gray JPEG in a fresh folder
    inside ``root``; kept for the next strokes on it (an upload's path is never reused for another file)."""
    key = (path, side)
    with _PREVIEWS_LOCK:
        if key in _PREVIEWS:
            _PREVIEWS.move_to_end(key)
            return _PREVIEWS[key]
    photo = read_image(path, max_megapixels)
    if max(photo.size) > side:
        photo = photo.copy()
        photo.thumbnail((side, side), Image.Resampling.LANCZOS)
    prepared = prepare(photo, max_megapixels)
    gray = _output_folder(root) / "gray.jpg"
    prepared.gray.convert("RGB").save(gray, quality=90)
    preview = Preview(prepared, gray, tuple(photo.info.get("notes", [])))
    with _PREVIEWS_LOCK:
        _PREVIEWS[key] = preview
        while len(_PREVIEWS) > PREVIEWS_KEPT:
            _PREVIEWS.popitem(last=False)
    return preview


def live_preview(colorizer: Colorizer, path: str, root: str, size: int, intensity: float = 1.0,
                 hints: Sequence[str] = (), max_megapixels: float = Limits.max_megapixels,
                 side: int = PREVIEW_SIDE, reach: str = "object", reference: Optional[str] = None) -> tuple[Path, Path]:
    """The stored photo ``path`` colorized at screen size with the painted hint layers ``hints`` (scaled to it), as
    (gray JPEG, colorized JPEG): what the page shows after each stroke. Colorize gives the full-resolution PNG."""
    try:
        preview = preview_of(path, root, max_megapixels, side)
        painted = read_hint_layers(hints, preview.prepared.l.shape[::-1], max_megapixels)
        painted = painted if painted and painted_share(painted) > 0 else None
        ref = reference_of(reference, max_megapixels) if reference else None
        result = colorizer.colorize_prepared(preview.prepared, size, intensity, painted, ref, reach)
        out = _output_folder(root) / "colorized.jpg"
        result.convert("RGB").save(out, quality=90)  # a tenth of a PNG's encoding time; a preview only
    except (ValueError, OSError) as exc:
        raise RequestError(_named(str(exc), {path: "the photo", **{f: "the painted colours" for f in hints},
                                             **({reference: "the reference"} if reference else {})})) from None
    return preview.gray, out


@functools.lru_cache(maxsize=8)
def reference_of(path: str, max_megapixels: float = Limits.max_megapixels) -> Image.Image:
    """The stored reference photo ``path``, decoded once for the strokes and the Colorize that follow."""
    return read_image(path, max_megapixels)


def show_matches(colorizer: Colorizer, path: str, reference: str, root: str, size: int,
                 max_megapixels: float = Limits.max_megapixels, side: int = PREVIEW_SIDE) -> tuple[Path, Path, float,
                                                                                               bool]:
    """Where a reference's colours were taken and put: the photo and the reference at screen size with a disc of each
    kept match's colour (:func:`~colorization.reference.match_reference`), as PNGs in a fresh folder inside ``root``,
    with the share of the photo's cells matched and whether the gate closed (too few matches: no hint at all)."""
    from .hints import hint_image
    from .reference import match_reference

    try:
        photo = preview_of(path, root, max_megapixels, side).prepared
        ref = reference_of(reference, max_megapixels)
        matches = match_reference(colorizer, Image.fromarray(photo.truth), ref, size)
        folder, shown = _output_folder(root), []
        for name, image, points in (("photo", Image.fromarray(photo.truth), matches.hint_points),
                                    ("reference", ref.convert("RGB"), matches.reference_points)):
            if max(image.size) > side:
                image = image.copy()
                image.thumbnail((side, side), Image.Resampling.LANCZOS)
            scale = image.width / (photo.l.shape[1] if name == "photo" else ref.width)
            radius = max(3.0, min(image.size) / 80)
            discs = hint_image([(x * scale, y * scale, colour, radius) for x, y, colour, _ in points()], image.size)
            out = folder / f"{name}_matches.png"
            Image.alpha_composite(image.convert("RGBA"), discs).convert("RGB").save(out, compress_level=1)
            shown.append(out)
    except (ValueError, OSError) as exc:
        raise RequestError(_named(str(exc), {path: "the photo", reference: "the reference"})) from None
    return shown[0], shown[1], matches.share, matches.gated


def live_seconds(path: str, size: int, architecture: str, hints: Sequence[str] = (), reference: Optional[str] = None,
                 costs: Optional[Costs] = None, side: int = PREVIEW_SIDE) -> float:
    """Estimated seconds of one live preview of the photo ``path``: its hint layers decoded at their size, the rest at
    screen size (the photo's own decode is paid once, by the first preview)."""
    costs, header = costs or COSTS, read_header(path)
    if header is None:
        return 0.0
    preview = _preview_size(header.size, side)
    layers = [layer.size for layer in map(read_header, hints) if layer]
    return (costs.colorize(preview, size, architecture, layers, scored=False)
            + reference_seconds(preview, size, architecture, reference, costs))


# --- What a request costs -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Costs:
    """Seconds of one thread per unit of a photo request's work; the defaults (:data:`COSTS`) are measured by
    ``python bench/benchmark.py cost`` (bench/RESULTS.md). MP: megapixels of the photo, unless named otherwise."""

    decode: float  # per MP decoded (the photo, each hint layer; PNG, the slower of PNG and JPEG)
    prepare: float  # per MP: L and the gray version
    network: Mapping[str, float]  # per megapixel the network sees (render_shape), by architecture()
    compose: float  # per MP: ab upsampled, Lab to RGB
    score: float  # per MP: a colour upload's gray baseline and both scores (PSNR, SSIM, colourfulness)
    encode: float  # per MP: the colorized PNG and the gray one (compress level 1)
    encode_gray: float  # per MP: the gray PNG alone
    hint_layer: float  # per MP per hint layer: scaled to the photo, composited, its painted share counted
    propagate: float  # per megapixel solved: the network's, up to hints.MAX_SOLVE_PIXELS

    def network_seconds(self, architecture: str, megapixels: float) -> float:
        """Seconds of one pass of a network of ``architecture`` on ``megapixels``; an unknown one costs as the
        slowest known."""
        return megapixels * self.network.get(architecture, max(self.network.values()))

    def colorize(self, size: Size, render_size: int, architecture: str, hint_sizes: Sequence[Size] = (),
                 scored: bool = True) -> float:
        """Seconds to colorize a photo of ``size`` at ``render_size`` with hint layers of ``hint_sizes``, scored
        (a colour upload) or not, and to write its PNGs."""
        megapixels, render = _megapixels(size), _render_megapixels(size, render_size)
        seconds = (megapixels * (self.decode + self.prepare + self.compose + self.encode)
                   + self.network_seconds(architecture, render) + (megapixels * self.score if scored else 0.0))
        if hint_sizes:
            seconds += (sum(_megapixels(layer) for layer in hint_sizes) * self.decode
                        + len(hint_sizes) * megapixels * self.hint_layer
                        + min(render, MAX_SOLVE_PIXELS / 1e6) * self.propagate)
        return seconds

    def gray(self, size: Size) -> float:
        """Seconds to show a photo's gray version: decode, prepare, one PNG."""
        return _megapixels(size) * (self.decode + self.prepare + self.encode_gray)

    def suggest(self, size: Size, render_size: int, architecture: str) -> float:
        """Seconds to suggest colours at a point of a photo: decode, prepare, one pass of the network."""
        return (_megapixels(size) * (self.decode + self.prepare)
                + self.network_seconds(architecture, _render_megapixels(size, render_size)))


def architecture(info: dict) -> str:
    """A weights file's architecture as :attr:`Costs.network` names it, from its metadata: "effnet-unet
    regression", "effnet-unet classification", "unet regression"..."""
    model = info.get("model", {})
    return f"{model.get('name')} {model.get('args', {}).get('output', 'regression')}"


def _megapixels(size: Size) -> float:
    return size[0] * size[1] / 1e6


def _render_megapixels(size: Size, render_size: int) -> float:
    h, w = render_shape(size[1], size[0], render_size)
    return h * w / 1e6


# Measured on the 2-vCPU AMD EPYC VM at load average 4.2 (bench/RESULTS.md); what matters is their ratios to each
# other and to the big lane's threshold, which were measured on the same machine.
COSTS = Costs(decode=0.0514, prepare=0.0062, network={"effnet-unet regression": 1.95, "unet regression": 4.64,
                                                       "effnet-unet classification": 10.8},
              compose=0.0339, score=0.105, encode=0.145, encode_gray=0.0613, hint_layer=0.0044, propagate=11.5)


@dataclass(frozen=True)
class Header:
    """What an image file's header says, read without decoding it."""

    size: Size
    gray: bool  # stored with one channel (and maybe alpha): there is no colour to score


def read_header(path: str) -> Optional[Header]:
    """The header of an image file; None for what Pillow cannot open (decoding it later gives the message)."""
    try:
        with Image.open(path) as image:
            return Header(image.size, image.mode in ("1", "L", "LA", "I", "I;16", "F"))
    except Exception:  # noqa: BLE001 - not an image, a bomb...
        return None


def colorize_seconds(path: str, size: int, architecture: str, hints: Sequence[str] = (),
                     reference: Optional[str] = None, costs: Costs = COSTS) -> float:
    """Estimated seconds to colorize the photo ``path`` with hint layers ``hints`` and a ``reference`` photo, from
    their headers; 0 for a photo Pillow cannot open, since decoding it fails at once with its message."""
    header, layers = read_header(path), [read_header(file) for file in hints]
    if header is None:
        return 0.0
    return (costs.colorize(header.size, size, architecture, [layer.size for layer in layers if layer],
                           scored=not header.gray) + reference_seconds(header.size, size, architecture, reference, costs))


def reference_seconds(size: Size, render_size: int, architecture: str, reference: Optional[str],
                      costs: Costs = COSTS) -> float:
    """Estimated seconds a ``reference`` photo adds to colorizing a photo of ``size``: decoding it, and the network's
    encoder on both photos at the render size (counted as two passes of the whole network: an upper bound)."""
    header = read_header(reference) if reference else None
    if header is None:
        return 0.0
    return _megapixels(header.size) * costs.decode + 2 * costs.network_seconds(
        architecture, _render_megapixels(size, render_size)) + min(
        _render_megapixels(size, render_size), MAX_SOLVE_PIXELS / 1e6) * costs.propagate


def gray_seconds(path: str, costs: Costs = COSTS) -> float:
    """Estimated seconds to show the photo ``path``'s gray version (:func:`gray_version`), from its header."""
    header = read_header(path)
    return 0.0 if header is None else costs.gray(header.size)


def suggest_seconds(path: str, size: int, architecture: str, costs: Costs = COSTS) -> float:
    """Estimated seconds to suggest colours on the photo ``path`` (:func:`suggest_at`), from its header."""
    header = read_header(path)
    return 0.0 if header is None else costs.suggest(header.size, size, architecture)


# --- Lanes ----------------------------------------------------------------------------------------------------------

def low_priority() -> None:
    """Lower the calling thread's CPU priority (nice 10), so that its work yields to everyone else's."""
    if sys.platform.startswith("linux"):  # Linux sets the priority of one thread; elsewhere it would be the process's
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class Lane:
    """Runs blocking calls on ``workers`` threads; a request waiting for one is a coroutine, holding no thread.

    A free worker goes to the waiting request whose session has been served least, counting each request by its
    ``cost`` (start-time fair queueing): a session sending costly or many requests gets its share of the lane's
    time, not the whole lane, even one that sends them one at a time. ``capacity`` bounds the requests the lane
    holds (running and waiting; None: bounded by whoever admits them) and ``per_session`` how many of them one
    session may hold; a request beyond either is refused at once with :class:`Busy`. Use it from one event loop.
    """

    def __init__(self, name: str, workers: int, capacity: Optional[int] = None, per_session: Optional[int] = None,
                 what: str = "requests", initializer: Optional[Callable[[], None]] = None):
        if workers < 1 or (capacity is not None and capacity < workers) or (per_session is not None
                                                                              and per_session < 1):
            raise ValueError(f"lane {name}: need workers >= 1, capacity >= workers and per_session >= 1, got "
                             f"{workers}, {capacity}, {per_session}")
        self.name, self.workers, self.capacity, self.per_session, self.what = name, workers, capacity, per_session, what
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=initializer)
        self._free = workers
        self._waiting: list[tuple[float, int, asyncio.Future]] = []  # a heap of (start tag, arrival, turn)
        self._arrivals = itertools.count()
        self._clock = 0.0  # the start tag of the request served last
        self._finish: dict[str, float] = {}  # by session: the tag where its requests so far end
        self._held: Counter[str] = Counter()  # requests running or waiting, by session

    @property
    def held(self) -> int:
        """Requests in the lane now, running or waiting."""
        return sum(self._held.values())

    async def run(self, session: str, cost: float, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one of the lane's threads in ``session``'s turn, with the caller's context variables;
        ``cost`` (e.g. estimated seconds) counts against the session's share. Raises :class:`Busy` at once when the
        lane or the session's share of it is full."""
        if self.per_session is not None and self._held[session] >= self.per_session:
            raise Busy(f"You already have {self._held[session]} {self.what} in progress; wait for one to finish.")
        if self.capacity is not None and self.held >= self.capacity:
            raise Busy(f"The server is busy with {self.what} ({self.held} in progress); try again in a minute.")
        self._held[session] += 1
        start, cost = max(self._clock, self._finish.get(session, 0.0)), max(cost, 0.0)
        self._finish[session] = start + cost
        try:
            await self._turn(start)
        except BaseException:  # it never ran: its cost is given back
            self._finish[session] -= cost
            self._let_go(session)
            raise
        self._clock = max(self._clock, start)
        loop = asyncio.get_running_loop()
        # The worker is given back when the work ends, not when its caller stops waiting (a closed connection).
        work = self._pool.submit(contextvars.copy_context().run, functools.partial(fn, *args))
        work.add_done_callback(lambda _: self._finish_soon(loop, session))
        return await asyncio.wrap_future(work)

    async def _turn(self, start: float) -> None:
        if self._free:  # then nobody is waiting
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (start, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given a worker as it was cancelled: pass the worker on
                self._next()
            raise  # a cancelled turn stays in the heap until its tag comes up, and is skipped then

    def _finish_soon(self, loop: asyncio.AbstractEventLoop, session: str) -> None:
        try:
            loop.call_soon_threadsafe(self._done, session)
        except RuntimeError:  # the loop has closed (the server stopped): nobody is waiting any more
            pass

    def _done(self, session: str) -> None:
        self._let_go(session)
        self._next()

    def _let_go(self, session: str) -> None:
        self._held[session] -= 1
        if self._held[session] <= 0:
            del self._held[session]
        if len(self._finish) > 256:  # forget sessions whose share is settled: none of theirs is in the lane
            self._finish = {s: tag for s, tag in self._finish.items() if tag > self._clock or s in self._held}

    def _next(self) -> None:
        """A worker is free: give it to the waiting request with the smallest start tag."""
        while self._waiting:
            start, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1


def session_key(session_hash: Optional[str], address: Optional[str]) -> str:
    """Whose share a request counts against: its session, or its client's address when it sent no session."""
    return session_hash or f"address {address or '-'}"


class Lanes:
    """The app's two lanes: ordinary requests on ``limits.concurrency`` threads, and requests estimated over
    ``limits.big_seconds`` (and clips) one at a time at low CPU priority, holding at most ``limits.big_queue``."""

    def __init__(self, limits: Limits):
        self.ordinary = Lane("ordinary", limits.concurrency, per_session=limits.per_session, what="photos")
        self.big = Lane("big", 1, capacity=limits.big_queue, per_session=limits.per_session,
                        what="large photos and clips", initializer=low_priority)
        self.big_seconds = limits.big_seconds

    def choose(self, seconds: float) -> Lane:
        """The big lane for a request estimated over ``big_seconds``, else the ordinary one."""
        return self.big if seconds > self.big_seconds else self.ordinary

    async def run(self, session: str, seconds: float, fn: Callable[..., Any], *args: Any, big: bool = False) -> Any:
        """``fn(*args)`` in the lane its estimated ``seconds`` choose (the big one if ``big``), in ``session``'s
        turn."""
        return await (self.big if big else self.choose(seconds)).run(session, seconds, fn, *args)
