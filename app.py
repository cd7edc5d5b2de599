"""Gradio demo: upload a photo, get it colorized at full resolution. Run: python app.py"""

import functools
import math
import os
import re
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import gradio as gr
import torch
from PIL import Image

from colorization import (Colorizer, available_weights, is_grayish, load_colorizer, prepare, read_image, read_metadata,
                          score_prepared)

try:  # on a Hugging Face ZeroGPU Space, borrow a GPU per call; elsewhere a no-op
    from spaces import GPU
except ImportError:
    GPU = lambda fn: fn  # noqa: E731

# Limits for a free 2-vCPU Space, where the worst accepted upload must cost one worker only a few seconds
# (bench/RESULTS.md); a bigger host raises them by environment variable.
MAX_MEGAPIXELS = float(os.environ.get("COLORIZE_MAX_MEGAPIXELS", "8"))
MAX_UPLOAD_MB = float(os.environ.get("COLORIZE_MAX_UPLOAD_MB", "25"))
CONCURRENCY = int(os.environ.get("COLORIZE_CONCURRENCY", "2"))  # ordinary photos colorized at once
# Photos above this go to a lane of their own: one at a time, at low CPU priority, so a few cheap uploads of
# big photos cannot take the workers from everyone else.
BIG_MEGAPIXELS = float(os.environ.get("COLORIZE_BIG_MEGAPIXELS", "2"))
RENDER_SIZES = (128, 512)  # the slider's range
MAX_INTENSITY = 2.0
# Each request gets its share of the CPU threads: oversubscribed OpenMP threads spin-wait, which on 2 busy cores
# made one forward pass 30x slower (0.09 s -> 3 s).
torch.set_num_threads(max(1, torch.get_num_threads() // CONCURRENCY))
cv2.setNumThreads(torch.get_num_threads())  # OpenCV's own pool would also escape the big lane's low priority
WEIGHTS = {path.name: path for path in available_weights()}  # best first
if not WEIGHTS:
    raise SystemExit("No weights/*.safetensors found: train a model or download the weights first.")


def _low_priority() -> None:
    if sys.platform.startswith("linux"):  # Linux sets the priority of one thread; elsewhere it would be the process's
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


LANES = {"ordinary": ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="ordinary"),
         "big": ThreadPoolExecutor(1, thread_name_prefix="big", initializer=_low_priority)}
EXAMPLES = sorted(str(p) for p in (Path(__file__).parent / "examples").glob("*.jpg"))


@functools.lru_cache(maxsize=None)
def get_colorizer(name: str) -> Colorizer:
    """Each model is loaded once, on first use, and kept."""
    return load_colorizer(WEIGHTS[name])


DEFAULT_MODEL = next(iter(WEIGHTS))
DEFAULT_SIZE = get_colorizer(DEFAULT_MODEL).render_size  # also loads the default model before the first visitor


def metrics_table(title: str, scores: dict) -> str:
    """The learning moment: model vs gray baseline vs the original, as a Markdown table."""
    ssim = lambda m: "n/a" if math.isnan(m["ssim"]) else f"{m['ssim']:.3f}"  # noqa: E731 - under 3 px: no window
    row = lambda m: f"{m['psnr']:.2f} | {ssim(m)} | {m['colorfulness']:.1f}"  # noqa: E731
    return (
        "**Your photo is already in colour**, so the model colorized its gray version and is scored "
        "against your original, beside the gray baseline (no colour at all):\n\n"
        "| | PSNR (dB) | SSIM | Colourfulness |\n|---|---:|---:|---:|\n"
        f"| {title} | {row(scores['model'])} |\n| Gray baseline | {row(scores['gray'])} |\n"
        f"| Your original | | | {scores['ground_truth']['colorfulness']:.1f} |\n\n"
        "Higher PSNR and SSIM mean closer to the original. The gray baseline often wins them: a wrong "
        "colour costs more than none, so a plausible colorization can still score lower."
    )


def _number(value, name: str, low: float, high: float) -> float:
    """A finite number in [low, high], or a gr.Error naming the setting (the API accepts any JSON)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number between {low:g} and {high:g}, got {value!r:.40}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise gr.Error(f"{name} must be between {low:g} and {high:g}, got {value!r:.40}")
    return number


def _safe_stem(name: str) -> str:
    """A file name stem that any file system accepts, from whatever the browser sent as the upload's name."""
    return re.sub(r"[^\w.-]+", "_", Path(name.replace("\0", "")).stem)[:64].strip("._") or "photo"


@GPU
def colorize(image: dict | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE, intensity: float = 1.0):
    """Colorize an uploaded photo; returns (gray, colorized) for the slider, the PNG's path and a note."""
    if not isinstance(image, dict) or not isinstance(image.get("path"), str):
        raise gr.Error("Upload a photo first.")
    if not isinstance(model, str) or model not in WEIGHTS:
        raise gr.Error(f"Unknown model {model!r:.60}; choose one of: {', '.join(WEIGHTS)}.")
    size = _number(render_size, "Render size", *RENDER_SIZES)
    if size % 32:  # Gradio's own slider check is skipped with preprocess=False
        raise gr.Error(f"Render size must be a multiple of 32, got {render_size!r:.40}")
    intensity = _number(intensity, "Colour intensity", 0.0, MAX_INTENSITY)
    upload_name = str(image.get("orig_name") or "upload")
    try:
        with Image.open(image["path"]) as header:  # the header alone: pixels are decoded in the lane
            megapixels = header.width * header.height / 1e6
    except Exception:  # noqa: BLE001 - not an image, a bomb...: read_image in the lane gives the message
        megapixels = 0.0
    lane = LANES["big" if megapixels > BIG_MEGAPIXELS else "ordinary"]
    return lane.submit(_colorize, image["path"], upload_name, model, int(size), intensity).result()


def _colorize(path: str, upload_name: str, model: str, size: int, intensity: float):
    try:  # ImageError and WeightsError are ValueErrors whose message says what is wrong
        colorizer = get_colorizer(model)
        photo = read_image(path, MAX_MEGAPIXELS)
        prepared = prepare(photo, MAX_MEGAPIXELS)
        if is_grayish(prepared.pixels):
            result = colorizer.colorize_prepared(prepared, size, intensity)
            note = f"Colorized with **{colorizer.title}** at render size {size}."
        else:
            result, scores = score_prepared(colorizer, prepared, size, intensity)
            note = metrics_table(colorizer.title, scores)
        # A fresh folder per request inside Gradio's temporary folder: no two requests share a file.
        folder, stem = Path(tempfile.mkdtemp(dir=demo.GRADIO_CACHE)), _safe_stem(upload_name)
        out, gray = folder / f"{stem}_colorized.png", folder / f"{stem}_gray.png"
        result.save(out, compress_level=1)  # several times faster than the default level, for a larger file
        prepared.gray.save(gray, compress_level=1)
    except (ValueError, OSError) as exc:
        raise gr.Error(str(exc).replace(path, upload_name)) from None
    except MemoryError:
        raise gr.Error("The server ran out of memory for this photo; try a smaller one.") from None
    notes = "".join(f"\n\n_Note: {n.replace(path, upload_name)}._" for n in photo.info.get("notes", []))
    return (str(gray), str(out)), str(out), note + notes


# delete_cache: every hour, uploads and results older than an hour are removed, so a long-running Space never fills up.
with gr.Blocks(title="Colorize a photo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
    gr.Markdown(f"# Colorize a black-and-white photo\nUpload a photo (up to {MAX_MEGAPIXELS:g} megapixels and "
                f"{MAX_UPLOAD_MB:g} MB) and press **Colorize**: the network guesses the colours from the gray image, and "
                "the result keeps your photo's full resolution. Try a colour photo to see how close the guess comes to "
                "the real colours.")
    with gr.Row():
        with gr.Column():
            photo = gr.Image(label="Photo", type="filepath", image_mode=None, sources=["upload", "clipboard"])
            model = gr.Dropdown([(read_metadata(p).get("title") or p.stem, name) for name, p in WEIGHTS.items()],
                                value=DEFAULT_MODEL, label="Model")
            size = gr.Slider(*RENDER_SIZES, value=DEFAULT_SIZE, step=32, label="Render size",
                             info="Higher keeps small details; lower gives steadier colours.")
            intensity = gr.Slider(0.0, MAX_INTENSITY, value=1.0, step=0.05, label="Colour intensity",
                                  info="1.0 is the model's own output; 0 is gray.")
            button = gr.Button("Colorize", variant="primary")
        with gr.Column():
            slider = gr.ImageSlider(label="Gray | colorized", format="png")
            download = gr.File(label="Full-resolution PNG")
            report = gr.Markdown()
    gr.Examples(EXAMPLES, inputs=photo, label="Examples (sources and licences: examples/ATTRIBUTION.md)")
    model.change(lambda name: get_colorizer(name).render_size, model, size, api_visibility="private")
    # preprocess=False: colorize gets the raw upload, so even a file Pillow cannot open gets read_image's message.
    button.click(colorize, [photo, model, size, intensity], [slider, download, report], api_name="colorize",
                 preprocess=False)

if __name__ == "__main__":
    # The queue lets requests through to the lanes, which bound the work actually done at once: a request
    # waiting for the big lane must not hold one of the few places an ordinary photo needs to reach its lane.
    demo.queue(default_concurrency_limit=64).launch(max_file_size=f"{MAX_UPLOAD_MB:g}mb")
