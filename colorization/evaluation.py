"""Evaluate a colorizer on a folder of colour photos, always beside the gray baseline (a = b = 0)."""

from __future__ import annotations

import math
import os
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from .hints import leak, leak_probe, simulated_hints
from .images import ImageError, as_uint8, find_images, read_image, to_rgb_array
from .metrics import colorfulness, constant_ab_baseline, constant_ab_image, image_metrics
from .pipeline import Colorizer, Prepared, prepare
from .sources import exclude_training_photos, trained_on

__all__ = ["evaluate", "format_table", "prepare_for_protocol", "protocol_reference", "score_prepared", "score_images",
           "summarize", "PROTOCOLS", "REFERENCE_MODES", "SCORE_KEYS", "PSNR_CEILING"]

SCORE_KEYS = ("psnr", "ssim", "colorfulness", "colorfulness_gap")
# The most a photo's PSNR counts for in a mean. Scores are measured on 8-bit images, whose rounding to whole levels
# alone leaves a mean squared error of 1/12 of a level squared (the variance of a uniform rounding error); an error
# below that is no error 8 bits can show, so it counts as that floor: 10 log10(255^2 x 12) = 58.92 dB. Without it
# one photo reproduced exactly (PSNR inf: a gray photo's gray baseline) made a folder's mean inf and its gain -inf.
# Colorizations of colour photos stay far below it (the default model's best of Kodak24 and McMaster18: 30.2 dB).
PSNR_CEILING = 10 * math.log10(255.0**2 * 12)
# How a photo is turned into the truth that is scored: "full" as it is (every pixel), "imagenet256" resized to
# 256 x 256 first (bicubic, no crop), as DDColor (ICCV 2023) and MultiColor (ACM MM 2024) score ImageNet val50k.
PROTOCOLS = {"full": None, "imagenet256": (256, 256)}
# The reference protocol's two sides (``evaluate --reference``): "same" gives each photo its own colour original
# mirrored and scaled to 80 % (the same content in another geometry: what a reference can gain at best),
# "unrelated" the next photo of the folder (what one of another scene costs).
REFERENCE_MODES = ("same", "unrelated")
REFERENCE_SCALE = 0.8


def score_images(result: np.ndarray, gray: np.ndarray, truth: np.ndarray) -> dict:
    """One photo's record: ``result`` and the ``gray`` baseline scored against ``truth`` (uint8 RGB, one shape).

    ``{"model": {"psnr", "ssim", "colorfulness", "colorfulness_gap"}, "gray": {...}, "ground_truth":
    {"colorfulness"}}``, the schema of every score this package reports; ``colorfulness_gap`` is the published
    papers' dCF, |colourfulness of the image - colourfulness of the truth|.
    """
    truth_colorfulness = colorfulness(truth)
    parts = {}
    for part, image in (("model", result), ("gray", gray)):
        scores = image_metrics(image, truth)
        parts[part] = {**scores, "colorfulness_gap": abs(scores["colorfulness"] - truth_colorfulness)}
    return {**parts, "ground_truth": {"colorfulness": truth_colorfulness}}


def summarize(records: Sequence[dict]) -> dict:
    """Means over per-photo records (:func:`score_images`' schema), in that schema, plus ``psnr_gain``.

    ``psnr_gain`` is the model's mean PSNR minus gray's (dB). ``evaluate`` and training validation both report this.
    The mean ``colorfulness_gap`` (dCF) is the mean of the per-photo gaps, not the gap between the means.
    Each photo's PSNR counts at most :data:`PSNR_CEILING`, so a photo reproduced exactly leaves the means finite.
    SSIM is the mean over the photos that have one (photos under 3 pixels a side have none), None when none has;
    :func:`evaluate` says how many photos each rule touched.
    """
    def mean(part: str, key: str) -> Optional[float]:
        values = np.array([r[part][key] for r in records], dtype=np.float64)
        if key == "psnr":
            values = np.minimum(values, PSNR_CEILING)
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else None

    parts = ("model", "gray", "constant") if records and "constant" in records[0] else ("model", "gray")
    summary = {part: {k: mean(part, k) for k in SCORE_KEYS} for part in parts}
    summary["ground_truth"] = {"colorfulness": mean("ground_truth", "colorfulness")}
    summary["psnr_gain"] = summary["model"]["psnr"] - summary["gray"]["psnr"]
    return summary


def _coverage(records: Sequence[dict]) -> dict:
    """How many photos :func:`summarize`'s rules touched: PSNRs counted at the ceiling (per part), and the photos
    that have an SSIM."""
    return {"psnr_capped": {part: sum(r[part]["psnr"] >= PSNR_CEILING for r in records) for part in ("model", "gray")},
            "ssim_photos": sum(not math.isnan(r["model"]["ssim"]) for r in records)}


def _json_safe(record):
    """A per-photo record as JSON can hold it, by :func:`summarize`'s rules: an infinite score (only a PSNR can be:
    a photo reproduced exactly) counts :data:`PSNR_CEILING`, a NaN one (SSIM under 3 pixels a side) is None."""
    if isinstance(record, dict):
        return {k: _json_safe(v) for k, v in record.items()}
    if isinstance(record, float) and not math.isfinite(record):
        return None if math.isnan(record) else min(record, PSNR_CEILING)
    return record


def score_prepared(colorizer: Colorizer, prepared: Prepared, render_size: Optional[int] = None,
                   intensity: float = 1.0, hints=None, reference=None, reach: str = "object"):
    """Colorize a prepared photo (with ``hints``, reaching as far as ``reach`` says, and ``reference`` if given)
    and score result and gray baseline against it.

    Returns (result image, {"model": {...}, "gray": {...}, "ground_truth": {"colorfulness": x}}).
    """
    result = colorizer.colorize_prepared(prepared, render_size, intensity, hints, reference, reach)
    return result, score_images(_rgb(result), _rgb(prepared.gray), prepared.truth)


def prepare_for_protocol(image: Image.Image, protocol: str = "full") -> Prepared:
    """A photo prepared for scoring under one of :data:`PROTOCOLS`.

    "full" is :func:`~colorization.pipeline.prepare`; "imagenet256" first resizes the photo's uint8 RGB (alpha
    dropped) to 256 x 256 with Pillow's bicubic filter, so the truth and the gray input are both that image.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    size = PROTOCOLS[protocol]
    if size is None:
        return prepare(image)
    truth = Image.fromarray(as_uint8(to_rgb_array(image)[0]), "RGB")
    if truth.size != size:  # one already at the size is scored exactly as the full-resolution path scores it
        truth = truth.resize(size, Image.BICUBIC)
    return prepare(truth)


def protocol_reference(truth: np.ndarray, mode: str, next_truth: Optional[np.ndarray] = None) -> Image.Image:
    """The reference a photo gets under one of :data:`REFERENCE_MODES`: its own colour original ``truth`` (uint8
    RGB) mirrored left-right and scaled to 80 % ("same"), or ``next_truth``, the next photo's ("unrelated")."""
    if mode == "same":
        image = Image.fromarray(truth, "RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        size = (max(1, round(image.width * REFERENCE_SCALE)), max(1, round(image.height * REFERENCE_SCALE)))
        return image.resize(size, Image.BICUBIC)
    if mode == "unrelated":
        if next_truth is None:
            raise ValueError("an unrelated reference needs the next photo")
        return Image.fromarray(next_truth, "RGB")
    raise ValueError(f"unknown reference mode {mode!r}; known: {', '.join(REFERENCE_MODES)}")


def _rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 view of a composed RGB or RGBA image (no copy through ``convert`` for RGB)."""
    return np.asarray(image) if image.mode == "RGB" else np.asarray(image)[..., :3]


def evaluate(colorizer: Colorizer, paths: Sequence[Union[str, os.PathLike]], render_size: Optional[int] = None,
             limit: int = 0, progress: bool = True, intensity: float = 1.0, hints: int = 0, seed: int = 0,
             protocol: str = "full", reference: Optional[str] = None) -> dict:
    """Run the full-resolution pipeline on each photo's L and score it against the original.

    ``protocol`` (:data:`PROTOCOLS`) says what the original is: the photo as it is ("full"), or the photo resized
    to 256 x 256 ("imagenet256", :func:`prepare_for_protocol`), from which the gray input is then made.
    ``hints`` > 0 gives each photo that many hints simulated from its own colours
    (:func:`colorization.hints.simulated_hints`, seeded with ``seed`` plus the photo's index), and measures the
    protocol's two sides: ``hint_gain``, dB over the automatic result (``automatic``), and ``leak``, the mean share
    of other colours' pixels that one dot moves (:func:`colorization.hints.leak_probe`, same seed; ``leak_photos``
    photos have such pixels). ``reference`` (:data:`REFERENCE_MODES`) gives each photo a reference photo
    (:func:`protocol_reference`; "unrelated": the next photo, the last one the first) and measures ``reference_gain``,
    dB over the automatic result, with ``reference_share`` (the mean share of cells matched),
    ``reference_gated`` (photos the gate gave no hint) and ``reference_refused`` (of those, photos whose reference
    was refused as gray, "no colour to give": they are scored without one, so both modes score the same photos).

    Returns ``{"images", "protocol", "render_size", "intensity", "weights", "per_image", "errors"}``, the means of
    :func:`summarize`, ``psnr_capped`` ({"model": n, "gray": n}: PSNRs counted at :data:`PSNR_CEILING`) and
    ``ssim_photos`` (the photos with an SSIM, at least 3 pixels a side). ``constant`` scores the one-colour
    baseline (every photo tinted with ``constant_ab``, the one ab that best fits them) as ``gray`` is scored.
    Photos the colorizer's weights trained on are never scored (``training_photos_left_out``,
    :func:`colorization.sources.exclude_training_photos`); ``training_data_unknown`` names its training folders
    that are not here, whose photos nobody can tell apart. The gray baseline goes through the same
    ``compose`` as the model, so the two compare fairly. ``intensity`` scales the predicted ab as the app's slider
    does. ``per_image`` holds what JSON can: a PSNR counts at most :data:`PSNR_CEILING`, as in the means, and a
    missing SSIM is None. A negative ``limit`` is a ValueError.
    """
    from tqdm.auto import tqdm

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if limit < 0:  # files[:-1] would drop the last photo without a word
        raise ValueError(f"limit must be at least 0 (0: every photo), got {limit}")
    if reference is not None and reference not in REFERENCE_MODES:
        raise ValueError(f"unknown reference mode {reference!r}; known: {', '.join(REFERENCE_MODES)}")
    if reference is not None and hints:
        raise ValueError("hints and a reference are measured one at a time")
    files, trained = find_images(paths), []
    if colorizer.info.get("path"):  # a photo its runs trained on would flatter it (Imagenette is 97 % of them)
        files, trained = exclude_training_photos(files, colorizer.info["path"])
    if limit:
        files = files[:limit]
    if not files:
        raise FileNotFoundError(f"no photos found in {', '.join(map(str, paths))}"
                                + (f" that {colorizer.info['path']} did not train on" if trained else ""))
    size = int(render_size or colorizer.render_size)
    per_image, errors = [], []
    for index, path in enumerate(tqdm(files, desc="evaluate", unit="img", disable=not progress)):
        try:
            prepared = prepare_for_protocol(read_image(path), protocol)
        except ImageError as exc:
            errors.append(str(exc))
            continue
        wanted = simulated_hints(prepared.truth, hints, seed + index) if hints else None
        try:  # e.g. a photo too long for the render size's activation memory: the others are still scored
            if reference:
                scores, photo_sides = _reference_sides(colorizer, prepared, size, intensity, reference,
                                                       files[(index + 1) % len(files)], protocol)
            else:
                _, scores = score_prepared(colorizer, prepared, size, intensity, wanted)
                photo_sides = _hint_sides(colorizer, prepared, size, intensity, seed + index) if hints else {}
        except ImageError as exc:
            errors.append(f"{path}: {exc}")
            continue
        per_image.append({"file": str(path), **scores, **photo_sides})
    if not per_image:
        raise ImageError("none of the photos could be scored: " + "; ".join(errors[:3]))
    constant_ab = _constant_baseline(per_image, protocol)
    summary, sides = summarize(per_image), {}
    if hints:
        leaks = [r["leak"] for r in per_image if r["leak"] is not None]
        # capped as summarize caps the model's PSNR, so the gain is the difference of two comparable means
        automatic = float(np.mean(np.minimum([r["automatic_psnr"] for r in per_image], PSNR_CEILING)))
        sides = {"automatic": {"psnr": automatic}, "hint_gain": summary["model"]["psnr"] - automatic,
                 "leak": float(np.mean(leaks)) if leaks else None, "leak_photos": len(leaks)}
    if reference:
        automatic = float(np.mean(np.minimum([r["automatic_psnr"] for r in per_image], PSNR_CEILING)))
        sides = {"automatic": {"psnr": automatic,
                               "colorfulness": float(np.mean([r["automatic_colorfulness"] for r in per_image]))},
                 "reference_gain": summary["model"]["psnr"] - automatic,
                 "reference_share": float(np.mean([r["reference_share"] for r in per_image])),
                 "reference_gated": sum(r["reference_gated"] for r in per_image),
                 "reference_refused": sum(r["reference_refused"] for r in per_image)}

    return {
        "images": len(per_image),
        "protocol": protocol,
        "render_size": size,
        "intensity": float(intensity),
        "hints": int(hints),
        "hint_seed": int(seed),
        "reference": reference,
        "weights": colorizer.info.get("path"),
        "training_photos_left_out": [str(p) for p in trained],
        "training_data_unknown": (list(trained_on(colorizer.info["path"]).unlisted)
                                  if colorizer.info.get("path") else []),
        "constant_ab": list(constant_ab),
        **summary,
        **_coverage(per_image),
        **sides,
        "per_image": [_json_safe(r) for r in per_image],
        "errors": errors,
    }


def _hint_sides(colorizer: Colorizer, prepared: Prepared, size: int, intensity: float, seed: int) -> dict:
    """Both sides of the hint protocol for one photo: the automatic PSNR (what the hints gain over) and the
    leak of one dot (:func:`colorization.hints.leak_probe`) into the photo's regions of other colours."""
    automatic = _rgb(colorizer.colorize_prepared(prepared, size, intensity))
    dot, other = leak_probe(prepared.truth, seed)
    dotted = _rgb(colorizer.colorize_prepared(prepared, size, intensity, dot))
    return {"automatic_psnr": image_metrics(automatic, prepared.truth)["psnr"],
            "leak": leak(automatic, dotted, other)}


def _reference_sides(colorizer: Colorizer, prepared: Prepared, size: int, intensity: float, mode: str,
                     next_path, protocol: str) -> tuple[dict, dict]:
    """One photo under the reference protocol: its scores with the reference of ``mode``, and the automatic
    result's PSNR and colourfulness beside the matches' share of cells and whether the gate closed."""
    from .reference import NO_COLOUR, prepare_reference, reference_hints

    next_truth = prepare_for_protocol(read_image(next_path), protocol).truth if mode == "unrelated" else None
    l_small = colorizer.l_small(prepared.l, size)
    try:
        ref = prepare_reference(protocol_reference(prepared.truth, mode, next_truth), l_small.shape)
    except ImageError as exc:  # a nearly gray photo as the reference: the user is told so and gets no hint
        if str(exc) != NO_COLOUR:
            raise
        ref = None
    matches = reference_hints(colorizer, l_small, ref) if ref is not None else None
    share, gated = (matches.share, matches.gated) if matches is not None else (0.0, True)
    _, scores = score_prepared(colorizer, prepared, size, intensity, reference=ref)
    automatic = _rgb(colorizer.colorize_prepared(prepared, size, intensity))
    return scores, {"automatic_psnr": image_metrics(automatic, prepared.truth)["psnr"],
                    "automatic_colorfulness": colorfulness(automatic),
                    "reference_share": share, "reference_gated": gated, "reference_refused": ref is None}



def _constant_baseline(per_image: list[dict], protocol: str) -> tuple[float, float]:
    """Score the constant-colour baseline into each record (``"constant"``): the one ab that best fits these photos
    (:func:`colorization.metrics.constant_ab_baseline`, from their own colours: a bound no constant beats)."""
    truths = lambda: (prepare_for_protocol(read_image(r["file"]), protocol).truth for r in per_image)  # noqa: E731
    ab = constant_ab_baseline(truths())
    for record, truth in zip(per_image, truths()):
        scores = image_metrics(constant_ab_image(truth, ab), truth)
        record["constant"] = {**scores, "colorfulness_gap": abs(scores["colorfulness"]
                                                                 - record["ground_truth"]["colorfulness"])}
    return ab


def format_table(report: dict, title: str = "") -> str:
    """A plain-text table of a report: model, gray baseline and ground truth (dCF where the report has it)."""
    gap = "colorfulness_gap" in report["model"]  # reports written before dCF was scored lack it
    lines = [title] if title else []
    lines.append(f"{'':14}{'PSNR (dB)':>11}{'SSIM':>9}{'colourfulness':>15}" + (f"{'dCF':>7}" if gap else ""))
    constant = [("one colour", report["constant"])] if report.get("constant") else []  # older reports lack it
    for name, part in [("model", report["model"]), ("gray baseline", report["gray"]), *constant]:
        ssim = "n/a" if part["ssim"] is None else f"{part['ssim']:.4f}"  # no photo was 3 pixels a side
        lines.append(f"{name:14}{part['psnr']:>11.2f}{ssim:>9}{part['colorfulness']:>15.1f}"
                     + (f"{part['colorfulness_gap']:>7.1f}" if gap else ""))
    lines.append(f"{'ground truth':14}{'':>11}{'':>9}{report['ground_truth']['colorfulness']:>15.1f}")
    gain = report["model"]["psnr"] - report["gray"]["psnr"]
    scale = report.get("intensity", 1.0)
    scaled = f", intensity {scale:g}" if scale != 1.0 else ""
    scaled += f", {report['hints']} simulated hints (seed {report['hint_seed']})" if report.get("hints") else ""
    size = PROTOCOLS.get(report.get("protocol", "full"))
    resized = f", each resized to {size[0]}x{size[1]} ({report['protocol']})" if size else ""
    lines.append(f"{report['images']} photos{resized}, render size {report['render_size']}{scaled}, "
                 f"PSNR {gain:+.2f} dB over gray")
    if constant:
        a, b = report["constant_ab"]
        lines.append(f"one colour: every photo's L with a = {a:.1f}, b = {b:.1f}, the best single ab for these "
                     f"photos: {report['constant']['psnr'] - report['gray']['psnr']:+.2f} dB over gray")
    if report.get("hints") and "hint_gain" in report:
        spread = (f"{100 * report['leak']:.0f} % of other colours' pixels moved > 5 ab by one dot "
                  f"({report['leak_photos']} photos)") if report["leak"] is not None else "no photo to measure it"
        lines.append(f"hints: {report['hint_gain']:+.2f} dB over automatic ({report['automatic']['psnr']:.2f}); "
                     f"leak {spread}")
    if report.get("reference") and "reference_gain" in report:
        lines.append(f"reference ({report['reference']}): {report['reference_gain']:+.2f} dB over automatic "
                     f"({report['automatic']['psnr']:.2f}, colourfulness {report['automatic']['colorfulness']:.1f}); "
                     f"{100 * report['reference_share']:.0f} % of cells matched, {report['reference_gated']} of "
                     f"{report['images']} photos given no hint by the gate"
                     + (f" ({report['reference_refused']} references gray)" if report.get("reference_refused") else ""))
    return "\n".join(lines)
