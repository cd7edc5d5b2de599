"""The demo's requests, from the raw values a page or an API call sends to the files and the note it shows.

Each request's values are checked (:mod:`colorization.serving`'s checks: an API call may send any JSON), its cost
estimated, and its work run in the lane that cost chooses, on the host's GPU where one is lent (``gpu``). No Gradio
here: ``app.py`` is the page over a :class:`Service`, and turns :class:`~colorization.serving.RequestError` into the
message a user sees.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .pipeline import Colorizer, load_colorizer
from .serving import (Batch, Lanes, Limits, RequestError, Variant, architecture, choice, colorize_batch,
                      colorize_clip_upload, colorize_seconds, colorize_upload, compare, compare_seconds, flag,
                      gray_seconds, gray_version, hint_files, live_preview, live_seconds, number, plan_batch,
                      render_size, show_matches, store_blobs, suggest_at, suggest_seconds, upload_files, upload_path,
                      where_to_click)
from .weights import read_metadata

__all__ = ["COMPARED_SIZES", "COMPARISONS", "REACHES", "Service", "metrics_table", "on_cpu"]

# How far painted colours reach (colorization.hints.REACH), as the page words them: their own object, or the whole
# photo along its strong edges (a colour cast).
REACHES = {"their object": "object", "the whole photo (a colour cast)": "photo"}
COMPARISONS = {"every model": "models", "render sizes": "sizes"}
COMPARED_SIZES = (128, 256, 384, 512)  # those inside the host's render sizes are offered

Progress = Any  # a callable like gr.Progress: progress((done, total), desc=..., unit=...)
# How the host runs a request's work: gpu(work, seconds) gives the callable to run, where seconds(*args) estimates
# the work's seconds on one CPU thread (ZeroGPU asks for a duration); on a CPU host the work itself.
GpuWrap = Callable[[Callable[..., Any], Callable[..., float]], Callable[..., Any]]


def on_cpu(work: Callable[..., Any], seconds: Callable[..., float]) -> Callable[..., Any]:
    """The work as it is: a host without a GPU to borrow."""
    return work


def metrics_table(title: str, scores: dict) -> str:
    """The learning moment: model vs gray baseline vs the original, as a Markdown table."""
    def row(m: dict) -> str:
        ssim = "n/a" if math.isnan(m["ssim"]) else f"{m['ssim']:.3f}"  # under 3 px: no window
        return f"{m['psnr']:.2f} | {ssim} | {m['colorfulness']:.1f}"

    return (
        "**Your photo is already in colour**, so the model colorized its gray version and is scored "
        "against your original, beside the gray baseline (no colour at all):\n\n"
        "| | PSNR (dB) | SSIM | Colourfulness |\n|---|---:|---:|---:|\n"
        f"| {title} | {row(scores['model'])} |\n| Gray baseline | {row(scores['gray'])} |\n"
        f"| Your original | | | {scores['ground_truth']['colorfulness']:.1f} |\n\n"
        "Higher PSNR and SSIM mean closer to the original. The gray baseline often wins them: a wrong "
        "colour costs more than none, so a plausible colorization can still score lower."
    )


def _notes(notes: Sequence[str]) -> str:
    return "".join(f"\n\n_Note: {note}._" for note in notes)


def _name(value: dict, default: str) -> str:
    return str(value.get("orig_name") or default)


class Service:
    """The demo's requests over the shipped ``weights`` (best first), within ``limits``, writing results inside
    ``root`` (the folder where the page's server keeps uploads: the only one requests may read). Every request method
    takes the ``session`` whose share of a lane it counts against, then the values as sent."""

    def __init__(self, limits: Limits, weights: Sequence[Path], root: Optional[str] = None, gpu: GpuWrap = on_cpu):
        if not weights:
            raise ValueError("No weights/*.safetensors found: train a model or download the weights first.")
        self.limits, self.lanes, self.root = limits, Lanes(limits), root
        self.weights = {Path(path).name: Path(path) for path in weights}
        metadata = {name: read_metadata(path) for name, path in self.weights.items()}
        self.titles = {name: info.get("title") or self.weights[name].stem for name, info in metadata.items()}
        self.architectures = {name: architecture(info) for name, info in metadata.items()}  # what a pass costs
        self.suggester = next((name for name, arch in self.architectures.items()
                               if arch.endswith(" classification")), None)
        self.default_model = next(iter(self.weights))
        self.compared_sizes = [s for s in COMPARED_SIZES if limits.render_sizes[0] <= s <= limits.render_sizes[1]]
        self.colorizer = functools.lru_cache(maxsize=None)(self._load)  # each model loaded once, on first use
        # The work of each request, as the host runs it (on a borrowed GPU, each with its estimated seconds).
        self._colorize = gpu(self._colorize_work, lambda model, path, name, size, intensity, layers, reach, ref:
                             colorize_seconds(path, size, self.architectures[model], layers, ref))
        self._live = gpu(self._live_work, lambda model, path, size, intensity, layers, reach, ref:
                         live_seconds(path, size, self.architectures[model], layers, ref))
        self._matches = gpu(self._matches_work, lambda model, path, ref, size:
                            live_seconds(path, size, self.architectures[model], (), ref))
        self._clip = gpu(self._clip_work, lambda model, path, name, size, temporal, progress, ref:
                         self._clip_seconds(ref))
        self._batch = gpu(self._batch_work, lambda model, batch, size, intensity, progress:
                          batch.seconds(size, self.architectures[model]))
        self._compare = gpu(self._compare_work, lambda variants, path, name, intensity:
                            self._compare_seconds(path, variants))
        self._suggest = gpu(self._suggest_work, lambda path, point, size:
                            suggest_seconds(path, size, self.architectures[self.suggester]))
        self._where = gpu(self._where_work, lambda path: self._where_seconds(path))

    def _load(self, name: str) -> Colorizer:
        try:
            return load_colorizer(self.weights[name])
        except (ValueError, OSError) as exc:  # WeightsError: a damaged file
            raise RequestError(f"The model {name} could not be loaded: {exc}") from None

    @property
    def default_size(self) -> int:
        """The default model's render size (loading it, so the first visitor does not wait for it)."""
        return self.colorizer(self.default_model).render_size

    # --- Checks of the values a request sends ---------------------------------------------------------------------

    def _stored(self, value: Any, missing: str = "Upload a photo first.") -> str:
        return upload_path(value, self.root, missing)

    def _settings(self, model: Any, size: Any, intensity: Any = 1.0) -> tuple[str, int, float]:
        return (choice(model, "model", self.weights), render_size(size, self.limits.render_sizes),
                number(intensity, "Colour intensity", 0.0, self.limits.max_intensity))

    def _reference(self, value: Any) -> Optional[str]:
        """The stored reference photo of an upload's value, or None for none."""
        return None if value is None else self._stored(value, "Upload a reference photo first.")

    def hint_layers(self, value: Any) -> list[str]:
        """The stored painted layers of an image editor's value sent as files (``{"layers": [file, ...]}``)."""
        return hint_files(value, self.root, self.limits.max_hint_layers)

    def store_layers(self, layers: Sequence[bytes]) -> list[str]:
        """Painted layers a page sent as bytes, stored to be read like uploads."""
        return store_blobs(layers, self.root, self.limits.max_hint_layers)

    def stored_photo(self, value: Any) -> str:
        """An upload's stored file: an upload becomes the page's photo only through this check."""
        return self._stored(value)

    # --- Requests ---------------------------------------------------------------------------------------------------

    async def colorize(self, session: str, image: Any, model: Any, size: Any, intensity: Any, hints: Any,
                       reach: Any, reference: Any) -> tuple[tuple[str, str], str, str]:
        """One photo at full resolution with its painted ``hints`` and ``reference``: ((gray, colorized) PNGs, the
        colorized PNG, a note with its scores when it was in colour)."""
        path = self._stored(image)
        model, size, intensity = self._settings(model, size, intensity)
        layers = self.hint_layers(hints)
        reach = choice(reach, "reach", REACHES.values())
        ref = self._reference(reference)
        seconds = colorize_seconds(path, size, self.architectures[model], layers, ref)
        result = await self.lanes.run(session, seconds, self._colorize, model, path, _name(image, "upload"), size,
                                      intensity, layers, reach, ref)
        painted = f" and your colours ({result.painted:.1%} of the photo painted)" if result.painted else ""
        title = self.titles[model] + painted
        note = (metrics_table(title, result.scores) if result.scores
                else f"Colorized with **{title}** at render size {size}.")
        return (str(result.gray), str(result.colorized)), str(result.colorized), note + _notes(result.notes)

    def _colorize_work(self, model, path, name, size, intensity, layers, reach, ref):
        return colorize_upload(self.colorizer(model), path, name, self.root, size, intensity, layers,
                               self.limits.max_megapixels, reach, ref)

    async def live(self, session: str, image: Any, layers: Sequence[str], model: Any, size: Any, intensity: Any,
                   reach: Any, reference: Any) -> Optional[tuple[str, str]]:
        """The photo at screen size with the stored painted ``layers`` so far: (gray, colorized) JPEGs; None for no
        photo yet."""
        if image is None:
            return None
        path = self._stored(image)
        model, size, intensity = self._settings(model, size, intensity)
        reach = choice(reach, "reach", REACHES.values())
        ref = self._reference(reference)
        seconds = live_seconds(path, size, self.architectures[model], layers, ref)
        gray, colorized = await self.lanes.run(session, seconds, self._live, model, path, size, intensity,
                                               list(layers), reach, ref)
        return str(gray), str(colorized)

    def _live_work(self, model, path, size, intensity, layers, reach, ref):
        return live_preview(self.colorizer(model), path, self.root, size, intensity, layers,
                            self.limits.max_megapixels, reach=reach, reference=ref)

    async def gray(self, session: str, image: Any) -> Optional[str]:
        """A new photo's gray version (a PNG), to paint colours on; None for no photo."""
        if image is None:
            return None
        path = self._stored(image)
        return str(await self.lanes.run(session, gray_seconds(path), gray_version, path, self.root,
                                        self.limits.max_megapixels))

    async def matches(self, session: str, image: Any, reference: Any, model: Any,
                      size: Any) -> tuple[list[tuple[str, str]], str]:
        """Where a reference's colours were taken and put: (PNG, caption) pairs of the photo and the reference with a
        disc per kept match, and a note."""
        path, ref = self._stored(image), self._reference(reference)
        if ref is None:
            raise RequestError("Upload a reference photo first.")
        model, size, _ = self._settings(model, size)
        seconds = live_seconds(path, size, self.architectures[model], (), ref)
        photo, shown, share, gated = await self.lanes.run(session, seconds, self._matches, model, path, ref, size)
        note = (f"{share:.0%} of the photo's cells matched the reference confidently"
                + (": too few to trust, so the reference gave no colour." if gated
                   else "; each disc is one match, in the colour it gave."))
        return [(str(photo), "Your photo: where each colour went"),
                (str(shown), "The reference: where it came from")], note

    def _matches_work(self, model, path, ref, size):
        return show_matches(self.colorizer(model), path, ref, self.root, size, self.limits.max_megapixels)

    async def colorize_clip(self, session: str, video: Any, model: Any, size: Any, temporal: Any, reference: Any,
                            progress: Progress = None) -> tuple[str, str]:
        """A clip, steadied over time unless ``temporal`` is false, every frame with a ``reference``'s colours if
        given: the MP4 and a note."""
        path = self._stored(video, "Upload a clip first.")
        model, size, _ = self._settings(model, size)
        temporal = flag(temporal, "Steady colours")
        ref = self._reference(reference)
        result = await self.lanes.run(session, self._clip_seconds(ref), self._clip, model, path, _name(video, "clip"),
                                      size, temporal, progress, ref, big=True)
        stats = result.stats
        steady = (f"steadied over time (blend {stats.blend:g}, {stats.reliable:.0%} of the pixels followed the "
                  f"motion, {stats.scene_cuts} scene cuts)" if stats.temporal else "each frame alone")
        note = (f"{stats.frames} frames of {stats.width}x{stats.height} at {stats.fps:.3g} frames/s, {steady}, "
                f"in {stats.seconds:.1f} s; audio: {stats.audio or 'none'}.")
        return str(result.path), note + _notes(result.notes)

    def _clip_seconds(self, reference: Optional[str]) -> float:
        """What a clip counts for: its budget of frames, twice over with a reference (the encoder's pass on each
        frame for the matching, counted as a whole pass: an upper bound)."""
        return self.limits.clip_seconds * (2 if reference else 1)

    def _clip_work(self, model, path, name, size, temporal, progress, ref):
        def report(done: int, total: Optional[int]) -> None:  # made where it runs: a closure does not pickle
            if progress is not None:
                progress((done, total) if total else None, desc="colorizing frames", unit="frames")

        return colorize_clip_upload(self.colorizer(model), path, name, self.root, size, temporal, self.limits, report,
                                    ref)

    async def colorize_many(self, session: str, files: Any, model: Any, size: Any, intensity: Any,
                            progress: Progress = None) -> tuple[str, str]:
        """Several photos, or ZIPs of photos, at full resolution: one ZIP of PNGs named after them, and a note naming
        any that could not be colorized."""
        uploads = upload_files(files, self.root, self.limits.max_batch_photos)
        model, size, intensity = self._settings(model, size, intensity)
        batch = await self.lanes.run(session, 0.0, plan_batch, uploads, self.root, self.limits)  # headers, ZIP lists
        result = await self.lanes.run(session, batch.seconds(size, self.architectures[model]), self._batch, model,
                                      batch, size, intensity, progress, big=True)
        left_out = len(batch.items) - result.colorized
        note = (f"{result.colorized} photos colorized with **{self.titles[model]}** at render size {size}"
                + (f"; {left_out} could not be" if left_out else "") + ".")
        return str(result.path), note + _notes(result.notes)

    def _batch_work(self, model: str, batch: Batch, size: int, intensity: float, progress: Progress):
        def report(done: int, total: int) -> None:
            if progress is not None:
                progress((done, total), desc="colorizing photos", unit="photos")

        return colorize_batch(self.colorizer(model), batch, self.root, size, intensity, self.limits.max_megapixels,
                              report)

    async def compare(self, session: str, image: Any, what: Any, model: Any,
                      intensity: Any) -> tuple[list[tuple[str, str]], str]:
        """The photo under every model (each at its own render size), or under ``model`` at a few render sizes, side
        by side at screen size: (PNG, caption) pairs and a note, with a table of scores for a colour photo."""
        path = self._stored(image)
        what = COMPARISONS[choice(what, "comparison", COMPARISONS)]
        model = choice(model, "model", self.weights)
        intensity = number(intensity, "Colour intensity", 0.0, self.limits.max_intensity)
        variants = ([(name, None) for name in self.weights] if what == "models"
                    else [(model, s) for s in self.compared_sizes])
        result = await self.lanes.run(session, self._compare_seconds(path, variants), self._compare, variants, path,
                                      _name(image, "upload"), intensity)
        note = "Pick the one that looks right by eye, then colorize at full resolution with it."
        if result.scores:  # a colour photo: each scored against it, the learning moment of the Photo tab
            record = next(iter(result.scores.values()))
            rows = [("Gray baseline", record["gray"])] + [(label, r["model"]) for label, r in result.scores.items()]
            note = ("Each is scored against your original (PSNR in dB, higher is closer); colourfulness says how vivid "
                    "it is.\n\n| | PSNR (dB) | Colourfulness |\n|---|---:|---:|\n"
                    + "".join(f"| {label} | {s['psnr']:.2f} | {s['colorfulness']:.1f} |\n" for label, s in rows)
                    + f"| Your original | | {record['ground_truth']['colorfulness']:.1f} |")
        return [(str(png), caption) for png, caption in result.images], note + _notes(result.notes)

    def _compare_seconds(self, path: str, variants: Sequence[tuple[str, Optional[int]]]) -> float:
        sizes = [(size or self.default_size, self.architectures[name]) for name, size in variants]  # an estimate
        return compare_seconds(path, sizes)

    def _compare_work(self, variants, path, name, intensity):
        chosen = [Variant(self.titles[model] if size is None else f"render size {size}", self.colorizer(model),
                          size or self.colorizer(model).render_size) for model, size in variants]
        return compare(chosen, path, name, self.root, intensity, self.limits.max_megapixels)

    async def suggest(self, session: str, image: Any, point: Any, size: Any) -> list[tuple[str, float]]:
        """The colours the classification model finds likeliest at ``point`` (x, y) of the photo, as (``#rrggbb``,
        share), likeliest first."""
        if self.suggester is None:
            raise RequestError("No classification model is shipped to suggest colours.")
        path = self._stored(image)
        try:
            x, y = (int(v) for v in point)
        except (TypeError, ValueError):
            raise RequestError(f"A point must be two whole numbers (x, y), got {point!r:.40}") from None
        size = render_size(size, self.limits.render_sizes)
        seconds = suggest_seconds(path, size, self.architectures[self.suggester])
        return await self.lanes.run(session, seconds, self._suggest, path, (x, y), size)

    def _suggest_work(self, path, point, size):
        return suggest_at(self.colorizer(self.suggester), path, point, size, max_megapixels=self.limits.max_megapixels)

    async def where_to_click(self, session: str, image: Any) -> tuple[str, str]:
        """Where a colour would help most: the gray photo (at its size) with the classification model's uncertainty
        tinted over it and five points numbered, best first; and a note."""
        if self.suggester is None:
            raise RequestError("No classification model is shipped to say where a colour would help.")
        path = self._stored(image)
        shown, points = await self.lanes.run(session, self._where_seconds(path), self._where, path)
        return str(shown), (f"The {len(points)} numbered spots are where a colour would help most, 1 first: the "
                            "classification model is least sure of the colour there, over the largest regions. Click "
                            "one for its likely colours, then paint it.")

    def _where_seconds(self, path: str) -> float:
        # A pass of the classification model and the entropy, as a suggestion costs, and the tinted photo's JPEG.
        return 2 * suggest_seconds(path, self.colorizer(self.suggester).render_size,
                                   self.architectures[self.suggester])

    def _where_work(self, path):
        return where_to_click(self.colorizer(self.suggester), path, self.root,
                              max_megapixels=self.limits.max_megapixels)
