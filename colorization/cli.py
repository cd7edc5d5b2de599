"""Command line: ``python -m colorization {colorize,train,evaluate,evaluate-video,prior,interpolate,info}``.

Expected failures (missing folder, unreadable photo, bad weights, unknown model) end with one
clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import typing
import warnings
from pathlib import Path
from typing import Optional, Sequence

from .images import ImageError
from .paths import data_dir
from .weights import WeightsError

__all__ = ["main", "console"]


class CLIError(Exception):
    """An error whose message is all the user needs."""


def _add_config_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--flag`` per dataclass field, typed from its annotation (JSON for dicts)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"default: {default}"
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)
        elif origin is list:
            parser.add_argument(flag, dest=f.name, nargs="+", default=argparse.SUPPRESS, help=help_text)
        elif origin is dict:
            parser.add_argument(flag, dest=f.name, type=json.loads, default=argparse.SUPPRESS,
                                help=f"JSON object, {help_text}")
        else:
            parser.add_argument(flag, dest=f.name, type=_finite if hint is float else hint, default=argparse.SUPPRESS,
                                help=help_text)


def _finite(value: str) -> float:
    """A number flag's value. float() takes "nan" and "inf", which pass every range check (nan < 0 is false)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value!r}")
    return number


def _render_size(value: str) -> int:
    from .runtime import check_render_size

    try:
        return check_render_size(int(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# The work one clip may cost on the command line, counted as it is decoded (colorization.video.VideoBudget), far
# above the app's: 500,000 frames are 4.6 h at 30 frames/s (about 3.5 h of work at 640x360 on 2 cores), 2,000,000
# megapixels 2 h of 4K or 9 h of 1080p at 30 frames/s. COLORIZE_MAX_VIDEO_FRAMES and
# COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS raise them, as they set the app's.
VIDEO_FRAMES, VIDEO_MEGAPIXELS = 500_000, 2_000_000.0


def _video_budget():
    from .video import VideoBudget

    return VideoBudget.from_environment(VIDEO_FRAMES, VIDEO_MEGAPIXELS, name_variables=True)


_SOURCES = ("the public photo sets' names: imagenette and imagenette-val (downloaded once), starter and starter-eval "
            "(photos shipped with scikit-image, offline); see colorization.sources")


def _data_paths(values: list[str]) -> list[str]:
    from .sources import data_paths

    try:
        return data_paths(values)
    except RuntimeError as exc:  # a download that failed
        raise CLIError(str(exc)) from None


def build_parser(prog: str = "python -m colorization") -> argparse.ArgumentParser:
    from .train import TrainConfig

    parser = argparse.ArgumentParser(prog=prog, description="Automatic image colorization in Lab.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("colorize", help="colorize photos and video clips (files or folders) into an output folder")
    p.add_argument("paths", nargs="+", help="photos, clips (recognised by their container: .mp4, .mov, .mkv, "
                                           ".webm, .avi, ...) or folders of them")
    p.add_argument("-o", "--out-dir", required=True, help="where the colorized PNGs (and MP4s for clips) go")
    p.add_argument("--weights", help="weights file (default: the best shipped in weights/)")
    p.add_argument("--render-size", type=_render_size, help="short side the network sees (multiple of 32)")
    p.add_argument("--temperature", type=_finite, help="classification models: annealed-mean temperature")
    p.add_argument("--hints", help="for one photo: an RGBA image of its size whose opaque pixels carry wanted "
                                   "colours, spread along the photo's edges (for one clip: on its first frame, "
                                   "carried along the motion)")
    p.add_argument("--reach", choices=["object", "photo"], default="object",
                   help="how far --hints reach: their object (default) or the whole photo along its edges, for a "
                        "colour cast of the whole photo (photos only)")
    p.add_argument("--reference", help="a colour photo whose colours, where it confidently matches, become hints "
                                       "for every photo and every frame of a clip (--hints win where both give one)")
    p.add_argument("--no-temporal", dest="temporal", action="store_false",
                   help="clips: colorize each frame alone (the per-frame baseline, which flickers)")
    p.add_argument("--blend", type=_finite, help="clips: share of the previous frame's colour kept where the "
                                               "motion is reliable (default: colorization.video.DEFAULT_BLEND)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")

    p = sub.add_parser("train", help="train a colorizer (see TrainConfig for every option)",
                       epilog=f"--data and --val-data also take {_SOURCES}")
    p.add_argument("--config", dest="recipe", metavar="FILE",
                   help="a recipe (recipes/*.json): TrainConfig fields as JSON; the flags below override it")
    _add_config_arguments(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt")

    p = sub.add_parser("evaluate", help="PSNR, SSIM and colourfulness against the originals, beside gray")
    p.add_argument("--weights", help="weights file (default: the best shipped in weights/)")
    p.add_argument("--data", nargs="+", required=True, help=f"folders (or files) of colour photos, or {_SOURCES}")
    p.add_argument("--json", dest="json_path", help="write the full report here")
    p.add_argument("--render-size", type=_render_size)
    p.add_argument("--limit", type=int, default=0, help="only the first N photos")
    p.add_argument("--intensity", type=_finite, default=1.0,
                   help="scale the predicted ab, as the app's colour intensity slider does (default 1)")
    p.add_argument("--temperature", type=_finite, help="classification models: annealed-mean temperature")
    p.add_argument("--hints", type=int, default=0, help="simulated hint points per photo, from its own colours "
                                                          "(colorization.hints.simulated_hints; default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated hints")
    p.add_argument("--protocol", choices=["full", "imagenet256"], default="full",
                   help="full: score every photo as it is (default); imagenet256: resize each photo to 256x256 "
                        "(bicubic, no crop) first and make the gray input from that, as DDColor and MultiColor "
                        "score ImageNet")
    p.add_argument("--reference", choices=["same", "unrelated"],
                   help="give each photo a reference photo and measure its gain over the automatic result: same "
                        "(its own colour original, mirrored and scaled to 80 %%) or unrelated (the next photo)")
    p.add_argument("--device")

    p = sub.add_parser("evaluate-video", help="per-frame scores and temporal consistency (warp error, CDC) of "
                                              "a colour clip colorized from its gray version, per frame and stabilised")
    p.add_argument("clips", nargs="+", help="colour video clips")
    p.add_argument("--weights", help="weights file (default: the best shipped in weights/)")
    p.add_argument("--blend", type=_finite, nargs="+", help="stabilisation blend weights to compare with the "
                                                          "per-frame baseline (default: the library's)")
    p.add_argument("--frames", type=int, help="only the first N frames of each clip")
    p.add_argument("--render-size", type=_render_size)
    p.add_argument("--json", dest="json_path", help="write the reports (a list, one per clip) here")
    p.add_argument("--device")

    p = sub.add_parser("prior", help="the ab colour prior of a photo folder, for classification training")
    p.add_argument("--data", nargs="+", required=True, help=f"folders (or files) of colour photos, or {_SOURCES}")
    p.add_argument("-o", "--out", required=True, help="output file (.safetensors)")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache-dir", help="decode cache, as for train")

    p = sub.add_parser("interpolate", help="mix two weights files of one model: (1 - alpha) * FIRST + alpha * SECOND")
    p.add_argument("first", help="e.g. the weights a fine-tuning started from")
    p.add_argument("second", help="e.g. the fine-tuned weights")
    p.add_argument("--alpha", type=_finite, default=0.5, help="weight of SECOND (default 0.5)")
    p.add_argument("-o", "--out", required=True, help="output weights file")
    p.add_argument("--title", default="", help="title stored in the metadata")

    p = sub.add_parser("info", help="show a weights file's metadata")
    p.add_argument("weights", nargs="?", help="weights file (default: the best shipped in weights/)")
    return parser


def _colorize(args) -> int:
    from .images import find_images
    from .pipeline import load_colorizer
    from .video import find_videos

    # The render size is checked against the memory it implies once the model is known, before any photo.
    colorizer = load_colorizer(args.weights, device=args.device, render_size=args.render_size,
                               temperature=args.temperature)
    videos = find_videos(args.paths)
    files = [f for f in find_images(args.paths) if f not in set(videos)]
    if not files and not videos:
        raise CLIError(f"no photos or clips found in {', '.join(args.paths)}")
    hints = None
    if args.hints:
        if len(files) + len(videos) != 1:
            raise CLIError(f"--hints belong to one photo or clip, got {len(files) + len(videos)}")
        from .images import read_image

        hints = read_image(args.hints)
    reference = None
    if args.reference:
        from .reference import prepare_reference

        size = args.render_size or colorizer.render_size
        reference = prepare_reference(args.reference, (size, size))  # read once, a clear error before any photo
    budget = _video_budget() if videos else None  # a bad variable is said before any photo is written
    failed = 0
    if files:
        for path, result in colorizer.colorize_files(files, args.out_dir, args.render_size, hints=hints,
                                                     reference=reference, reach=args.reach):
            if isinstance(result, Exception):
                failed += 1
                _say(f"error: {result}")
        print(f"colorized {len(files) - failed} of {len(files)} photos into {args.out_dir}")
    if videos:
        failed += _colorize_videos(colorizer, videos, args, hints, budget, reference)
    return 1 if failed else 0


def _colorize_videos(colorizer, videos, args, hints, budget, reference=None) -> int:
    """Each clip to OUT_DIR/<name>.mp4 with a progress bar; returns how many failed."""
    from tqdm.auto import tqdm

    from .video import DEFAULT_BLEND, VideoError, colorize_video

    blend = DEFAULT_BLEND if args.blend is None else args.blend
    out_dir = Path(args.out_dir)
    failed, used = 0, set()
    for path in videos:
        name = path.stem
        while name in used:  # two clips with one stem never overwrite each other
            name += "_"
        used.add(name)
        with tqdm(desc=path.name, unit="frame", leave=False) as bar:
            def progress(done: int, total: Optional[int]) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                stats = colorize_video(colorizer, path, out_dir / f"{name}.mp4", args.temporal, blend=blend,
                                       render_size=args.render_size, hints=hints, reference=reference,
                                       budget=budget,
                                       progress=progress)
            except ImageError as exc:  # a VideoError, or a clip too long for the render size's memory
                failed += 1
                _say(f"error: {exc}" if isinstance(exc, VideoError) else f"error: {path}: {exc}")
                continue
        mode = f"stabilised, blend {stats.blend:g}, {stats.scene_cuts} scene cuts" if stats.temporal else "per frame"
        audio = f", audio {stats.audio}" if stats.audio else ", no audio"
        print(f"{path} -> {out_dir / (name + '.mp4')}: {stats.frames} frames, {stats.width}x{stats.height}, "
              f"{stats.fps:.3g} fps ({mode}{audio}); {stats.frames_per_second:.1f} frames/s")
        for note in stats.notes:
            _say(f"warning: {path}: {note}")
    print(f"colorized {len(videos) - failed} of {len(videos)} clips into {out_dir}")
    return failed


def _train(args) -> int:
    from .train import TrainConfig, TrainingIOError, train

    flags = {k: v for k, v in vars(args).items() if k not in ("command", "resume", "recipe")}
    for key in ("data", "val_data"):
        if key in flags:
            flags[key] = _data_paths(flags[key])
    try:  # the settings first: a wrong model name is said whether or not the photos are there
        config = TrainConfig.from_recipe(args.recipe, flags) if args.recipe else TrainConfig.from_dict(flags)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if "data" not in flags and not args.recipe and not (data_dir() / "train").is_dir():
        raise CLIError(f"no photos: --data FOLDER, or --data imagenette (downloads it) or --data starter (offline, "
                       f"tiny); the default {data_dir() / 'train'} is not there")
    try:
        best = train(config, resume=args.resume)
    except TrainingIOError as exc:  # main does not import the trainer, so it cannot name this class
        raise CLIError(str(exc)) from None
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0 only
        print(f"best weights: {best}")
    return 0


def _evaluate(args) -> int:
    from .evaluation import evaluate, format_table
    from .pipeline import load_colorizer

    if args.intensity < 0:
        raise ValueError("--intensity must be at least 0")
    if args.limit < 0:  # a slice's -1 would silently drop the last photo
        raise ValueError(f"--limit must be at least 0 (0: every photo), got {args.limit}")
    colorizer = load_colorizer(args.weights, device=args.device, render_size=args.render_size,
                               temperature=args.temperature)
    if args.hints < 0:
        raise ValueError("--hints must be at least 0")
    args.data = _data_paths(args.data)
    report = evaluate(colorizer, args.data, args.render_size, limit=args.limit, intensity=args.intensity,
                      hints=args.hints, seed=args.seed, protocol=args.protocol, reference=args.reference)
    print(format_table(report, f"{colorizer.title} on {', '.join(args.data)}"))
    for error in report["errors"]:
        _say(f"error: {error}")
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(report, indent=1))
    return 1 if report["errors"] else 0


def _evaluate_video(args) -> int:
    from .pipeline import load_colorizer
    from .video import DEFAULT_BLEND, evaluate_video, format_video_table

    colorizer = load_colorizer(args.weights, device=args.device, render_size=args.render_size)
    if args.frames is not None and args.frames < 2:
        raise ValueError("--frames must be at least 2 (the temporal measures compare frames)")
    budget = _video_budget()
    reports = []
    for clip in args.clips:
        report = evaluate_video(colorizer, clip, args.blend or [DEFAULT_BLEND], args.render_size, args.frames,
                                budget=budget)
        print(format_video_table(report, f"{colorizer.title} on {clip}"))
        for note in report["notes"]:
            _say(f"warning: {clip}: {note}")
        reports.append(report)
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(reports, indent=1))
    return 0


def _prior(args) -> int:
    from .data import decode_photos
    from .images import find_images
    from .quantize import ab_bins, compute_prior, save_prior

    files = find_images(_data_paths(args.data))
    if not files:
        raise CLIError(f"no photos found in {', '.join(args.data)}")
    photos = decode_photos(files, args.image_size, args.workers, cache_dir=args.cache_dir)
    if not photos.files:
        raise CLIError("no usable colour photos (all unreadable or gray)")
    bins = ab_bins()
    prior = compute_prior(photos.images, bins)
    save_prior(args.out, bins, prior, {"photos": str(len(photos.files)), "image_size": str(args.image_size),
                                       "data": json.dumps(args.data)})
    top = prior.topk(3)
    common = ", ".join(f"({a:.0f}, {b:.0f}) {p:.1%}" for (a, b), p in zip(bins[top.indices].tolist(), top.values.tolist()))
    print(f"prior over {len(bins)} ab bins from {len(photos.files)} photos -> {args.out}; most common: {common}")
    return 0


def _interpolate(args) -> int:
    from .weights import interpolate_weights

    interpolate_weights(args.first, args.second, args.alpha, args.out, args.title)
    print(f"{args.out}: {1 - args.alpha:g} x {args.first} + {args.alpha:g} x {args.second}")
    return 0


def _info(args) -> int:
    from .pipeline import default_weights
    from .weights import load_weights

    path = args.weights or default_weights()
    _, meta = load_weights(path, "cpu")  # the metadata of a file that loads: info refuses what loading refuses
    print(json.dumps({"path": str(path), **meta}, indent=2))
    return 0


def _say(line: str) -> None:
    """One line on stderr, on a line of its own even while a progress bar is drawn."""
    from tqdm.auto import tqdm

    if not sys.stderr.isatty() and any(not bar.disable for bar in tqdm._instances):
        # In a file or pipe the bar's redraws ("\r") share one line, which tqdm's clearing does not end.
        line = "\n" + line
    tqdm.write(line, file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    _say(f"warning: {message}")


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m colorization") -> int:
    """Entry point; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser(prog).parse_args(argv)
    handler = {"colorize": _colorize, "train": _train, "evaluate": _evaluate, "evaluate-video": _evaluate_video,
               "prior": _prior, "interpolate": _interpolate, "info": _info}[args.command]
    try:
        with warnings.catch_warnings():  # e.g. "only the first of 3 frames is used": one line, not a source dump
            warnings.showwarning = _show_warning
            return handler(args)
    except (CLIError, ImageError, WeightsError, FileNotFoundError, ValueError) as exc:
        _say(f"error: {exc}")
        return 2
    except OSError as exc:  # the output folder or disk failed us: the message names the file
        _say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def console() -> None:
    """The ``colorize`` command that ``pip install`` puts on the PATH."""
    sys.exit(main(prog="colorize"))
