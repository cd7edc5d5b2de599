"""Gradio demo: upload a photo, get it colorized at full resolution. Run: python app.py"""

import functools
import math
import os
import re
import tempfile
from pathlib import Path

import cv2
import gradio as gr
import torch

from colorization import (Colorizer, VideoBudget, available_weights, colorize_video, is_grayish, load_colorizer,
                          prepare, read_image, read_metadata, score_prepared, suggested_colours)
from colorization.serving import (COSTS, Busy, Lane, architecture, low_priority, painted_share, read_header,
                                  read_hint_layers)

try:  # on a Hugging Face ZeroGPU Space, borrow a GPU per call; elsewhere a no-op
    from spaces import GPU
except ImportError:
    GPU = lambda fn: fn  # noqa: E731

# Limits for a free 2-vCPU Space, where the worst accepted upload must cost one worker only a few seconds
# (bench/RESULTS.md); a bigger host raises them by environment variable.
MAX_MEGAPIXELS = float(os.environ.get("COLORIZE_MAX_MEGAPIXELS", "8"))
MAX_UPLOAD_MB = float(os.environ.get("COLORIZE_MAX_UPLOAD_MB", "25"))
CONCURRENCY = int(os.environ.get("COLORIZE_CONCURRENCY", "2"))  # ordinary photos colorized at once
# Requests whose work is estimated over this many seconds of one thread (serving.COSTS: the photo's pixels, the
# render size, the model, hint layers, scoring, the PNGs) go to a lane of their own: one at a time, at low CPU
# priority, so a few cheap uploads of costly requests cannot take the workers from everyone else. A 1024x768 colour
# photo at render size 128 is 0.3 s; 1 MP at render size 512, or 2.5 MP at 256, are over it.
BIG_SECONDS = float(os.environ.get("COLORIZE_BIG_SECONDS", "1"))
# Requests wait for their lane as coroutines, holding no thread; Gradio admits at most as many as the lanes can hold
# and keeps the rest in its queue (at most QUEUE_SIZE). The big lane holds at most BIG_QUEUE requests (running and
# waiting: about 14 s of 8 MP photos) and a session at most PER_SESSION in a lane (a page may have a clip, a new
# photo's gray version and its colorization in flight); beyond that a request is refused at once with a message.
BIG_QUEUE = int(os.environ.get("COLORIZE_BIG_QUEUE", "6"))
PER_SESSION = int(os.environ.get("COLORIZE_PER_SESSION", "3"))
QUEUE_SIZE = int(os.environ.get("COLORIZE_QUEUE_SIZE", "32"))
# A clip costs about a second per 20 frames of 640x360 on 2 threads (bench/RESULTS.md: 21.6 frames/s), so 20 s of
# 24 frames/s take about 25 s: its length and frame size are bounded, and clips take the big lane, one at a time.
MAX_VIDEO_SECONDS = float(os.environ.get("COLORIZE_MAX_VIDEO_SECONDS", "20"))
MAX_VIDEO_MEGAPIXELS = float(os.environ.get("COLORIZE_MAX_VIDEO_MEGAPIXELS", "0.6"))
# The work itself is counted as the frames are decoded, since a header's duration and frame rate can lie or be
# missing: at most 600 frames (20 s at 30 frames/s; 100,000 frames of 16x16 at 5,000 frames/s last 20 s too) and
# 600 frames' worth of the largest accepted frame. COLORIZE_MAX_VIDEO_FRAMES and COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS
# set them.
VIDEO_BUDGET = VideoBudget.from_environment(frames=600, megapixels=600 * MAX_VIDEO_MEGAPIXELS)
RENDER_SIZES = (128, 512)  # the slider's range
MAX_INTENSITY = 2.0
# The brush's palette before any suggestion: strong, distinct hues (only their chroma is used; L stays the photo's).
MAX_HINT_LAYERS = 8  # the editor sends one; the API may send a few
HINT_COLOURS = ["#d62728", "#ff7f0e", "#f2c500", "#2ca02c", "#17becf", "#1f77b4", "#6a3d9a", "#e377c2", "#8c564b"]
# Each request gets its share of the CPU threads: oversubscribed OpenMP threads spin-wait, which on 2 busy cores
# made one forward pass 30x slower (0.09 s -> 3 s).
torch.set_num_threads(max(1, torch.get_num_threads() // CONCURRENCY))
cv2.setNumThreads(torch.get_num_threads())  # OpenCV's own pool would also escape the big lane's low priority
WEIGHTS = {path.name: path for path in available_weights()}  # best first
if not WEIGHTS:
    raise SystemExit("No weights/*.safetensors found: train a model or download the weights first.")
ARCHITECTURES = {name: architecture(read_metadata(path)) for name, path in WEIGHTS.items()}  # what a pass costs


LANES = {"ordinary": Lane("ordinary", CONCURRENCY, per_session=PER_SESSION, what="photos"),
         "big": Lane("big", 1, capacity=BIG_QUEUE, per_session=PER_SESSION, what="large photos and clips",
                     initializer=low_priority)}
# Photos admitted to the lanes at once: the big lane's places plus, for the ordinary lane, one running and one
# waiting per worker, so that big photos can never hold the places ordinary photos need.
PHOTOS_ADMITTED = BIG_QUEUE + 2 * CONCURRENCY
CLIPS_ADMITTED = max(1, BIG_QUEUE // 2)  # clips wait in Gradio's queue, leaving big photos half the big lane
# A clip counts as the most it may cost: its budget of frames at about 20 frames/s (bench/RESULTS.md: 21.6 on 2 threads).
CLIP_SECONDS = VIDEO_BUDGET.frames / 20
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
        if isinstance(value, bool):  # float(True) is 1.0
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number between {low:g} and {high:g}, got {value!r:.40}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise gr.Error(f"{name} must be between {low:g} and {high:g}, got {value!r:.40}")
    return number


def _check_model(model) -> None:
    if not isinstance(model, str) or model not in WEIGHTS:
        raise gr.Error(f"Unknown model {model!r:.60}; choose one of: {', '.join(WEIGHTS)}.")


def _render_size(value) -> int:
    """A render size from the slider's range and step (Gradio's own slider check is skipped with preprocess=False)."""
    size = _number(value, "Render size", *RENDER_SIZES)
    if size % 32:
        raise gr.Error(f"Render size must be a multiple of 32, got {value!r:.40}")
    return int(size)


def _safe_stem(name: str) -> str:
    """A file name stem that any file system accepts, from whatever the browser sent as the upload's name."""
    return re.sub(r"[^\w.-]+", "_", Path(name.replace("\0", "")).stem)[:64].strip("._") or "photo"


# Gradio checks only file objects that carry "meta", and the handlers take the raw payload (preprocess=False), so
# {"path": "/etc/..."} would be read as given. Every path a handler reads must lie in the folder where Gradio keeps this
# app's uploads, examples and results; every refusal reads the same, so it does not tell which files exist.
NOT_UPLOADED = "That file was not uploaded to this app; upload it again."


def _stored_file(path: str) -> str:
    """``path`` with its links resolved, if it is a file in Gradio's upload and cache folder; else a gr.Error."""
    try:
        real, folder = os.path.realpath(path), os.path.realpath(demo.GRADIO_CACHE)
        if os.path.commonpath([real, folder]) == folder and os.path.isfile(real):
            return real
    except (TypeError, ValueError, OSError):  # a NUL byte, a path too long...
        pass
    raise gr.Error(NOT_UPLOADED)


def _upload_path(image) -> str:
    if not isinstance(image, dict) or not isinstance(image.get("path"), str):
        raise gr.Error("Upload a photo first.")
    return _stored_file(image["path"])


def _lane(seconds: float) -> Lane:
    """The big lane for requests estimated over BIG_SECONDS, else the ordinary one."""
    return LANES["big" if seconds > BIG_SECONDS else "ordinary"]


def _hint_files(hints) -> list[str]:
    """The painted layers' files in an image editor value ({"layers": [file, ...]}); [] for none."""
    if hints is None:
        return []
    layers = hints.get("layers") if isinstance(hints, dict) else None
    if isinstance(layers, list) and len(layers) > MAX_HINT_LAYERS:  # each costs a decode: a thousand would buy minutes
        raise gr.Error(f"Hints may have at most {MAX_HINT_LAYERS} layers, got {len(layers)}.")
    if isinstance(layers, list) and all(isinstance(layer, dict) and isinstance(layer.get("path"), str)
                                        for layer in layers):
        return [_stored_file(layer["path"]) for layer in layers]
    raise gr.Error("Hints must be an image editor value: {\"layers\": [RGBA image files of the photo's size]}.")


async def _in_lane(lane: Lane, request: gr.Request | None, seconds: float, fn, *args):
    """``fn(*args)`` in ``lane``, in the turn of the request's session (its client address when it sent none), whose
    share of the lane is counted in estimated ``seconds``."""
    session = (request.session_hash or f"address {request.client.host}") if request and request.client else "-"
    try:
        return await lane.run(session, seconds, fn, *args)
    except Busy as exc:
        raise gr.Error(str(exc)) from None


async def colorize(image: dict | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE,
                   intensity: float = 1.0, hints: dict | None = None, request: gr.Request = None):
    """Colorize an uploaded photo, with the colours painted on it if any; returns (gray, colorized) for the
    slider, the PNG's path and a note. ``hints``: the editor's value, whose layers are RGBA images of the photo's
    size (API: ``{"background": None, "layers": [handle_file("hints.png")], "composite": None}``)."""
    path = _upload_path(image)
    _check_model(model)
    size = _render_size(render_size)
    intensity = _number(intensity, "Colour intensity", 0.0, MAX_INTENSITY)
    upload_name = str(image.get("orig_name") or "upload")
    hint_files = _hint_files(hints)
    # What the headers say (an unreadable file costs nothing here: decoding it fails at once, with its message).
    header, layers = read_header(path), [read_header(file) for file in hint_files]
    seconds = 0.0 if header is None else COSTS.colorize(
        header.size, size, ARCHITECTURES[model], [layer.size for layer in layers if layer], scored=not header.gray)
    return await _in_lane(_lane(seconds), request, seconds, _colorize, path, upload_name, model, size, intensity,
                          hint_files)


@GPU
def _colorize(path: str, upload_name: str, model: str, size: int, intensity: float, hint_files: list[str]):
    try:  # ImageError and WeightsError are ValueErrors whose message says what is wrong
        colorizer = get_colorizer(model)
        photo = read_image(path, MAX_MEGAPIXELS)
        prepared = prepare(photo, MAX_MEGAPIXELS)
        hints = read_hint_layers(hint_files, photo.size, MAX_MEGAPIXELS)
        share = painted_share(hints) if hints else 0.0
        hints = hints if share > 0 else None  # an untouched canvas is no hint
        painted = f" and your colours ({share:.1%} of the photo painted)" if hints else ""
        if is_grayish(prepared.pixels):
            result = colorizer.colorize_prepared(prepared, size, intensity, hints)
            note = f"Colorized with **{colorizer.title}** at render size {size}{painted}."
        else:
            result, scores = score_prepared(colorizer, prepared, size, intensity, hints)
            note = metrics_table(colorizer.title + painted, scores)
        # A fresh folder per request inside Gradio's temporary folder: no two requests share a file.
        folder, stem = Path(tempfile.mkdtemp(dir=demo.GRADIO_CACHE)), _safe_stem(upload_name)
        out, gray = folder / f"{stem}_colorized.png", folder / f"{stem}_gray.png"
        result.save(out, compress_level=1)  # several times faster than the default level, for a larger file
        prepared.gray.save(gray, compress_level=1)
    except (ValueError, OSError) as exc:
        message = str(exc).replace(path, upload_name)
        for number, file in enumerate(hint_files, 1):  # a layer's message names its server path
            message = message.replace(file, f"hint layer {number}")
        raise gr.Error(message) from None
    except MemoryError:
        raise gr.Error("The server ran out of memory for this photo; try a smaller one.") from None
    notes = "".join(f"\n\n_Note: {n.replace(path, upload_name)}._" for n in photo.info.get("notes", []))
    return (str(gray), str(out)), str(out), note + notes


async def show_gray(image: dict | None, request: gr.Request = None):
    """A new photo: its gray version as the canvas to paint colours on (no strokes yet) and to click for suggestions."""
    if image is None:
        return None, None
    path = _upload_path(image)
    header = read_header(path)
    seconds = 0.0 if header is None else COSTS.gray(header.size)
    return await _in_lane(_lane(seconds), request, seconds, _gray, path)


def _gray(path: str):
    try:
        prepared = prepare(read_image(path, MAX_MEGAPIXELS), MAX_MEGAPIXELS)
        gray = Path(tempfile.mkdtemp(dir=demo.GRADIO_CACHE)) / "gray.png"
        prepared.gray.save(gray, compress_level=1)
    except (ValueError, OSError) as exc:
        raise gr.Error(str(exc).replace(path, "the photo")) from None
    return {"background": str(gray), "layers": [], "composite": None}, str(gray)


async def colorize_clip(video: dict | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE,
                        temporal: bool = True, request: gr.Request = None, progress=gr.Progress()):
    """Colorize an uploaded clip (steadied over time unless ``temporal`` is false); returns the MP4's path and a note."""
    if not isinstance(video, dict) or not isinstance(video.get("path"), str):
        raise gr.Error("Upload a clip first.")
    _check_model(model)
    size = _render_size(render_size)
    if not isinstance(temporal, bool):
        raise gr.Error(f"Steady colours must be true or false, got {temporal!r:.40}")
    path, name = _stored_file(video["path"]), str(video.get("orig_name") or "clip")

    def report(done: int, total: int | None) -> None:
        progress((done, total) if total else None, desc="colorizing frames", unit="frames")

    out = Path(tempfile.mkdtemp(dir=demo.GRADIO_CACHE)) / f"{_safe_stem(name)}_colorized.mp4"
    try:
        stats = await _in_lane(LANES["big"], request, CLIP_SECONDS, _colorize_clip, model, path, out, temporal, size,
                               report)
    except (ValueError, OSError) as exc:  # VideoError is a ValueError
        raise gr.Error(str(exc).replace(path, name)) from None
    steady = (f"steadied over time (blend {stats.blend:g}, {stats.reliable:.0%} of the pixels followed the motion, "
              f"{stats.scene_cuts} scene cuts)" if stats.temporal else "each frame alone")
    note = (f"{stats.frames} frames of {stats.width}x{stats.height} at {stats.fps:.3g} frames/s, {steady}, "
            f"in {stats.seconds:.1f} s; audio: {stats.audio or 'none'}.")
    return str(out), note + "".join(f"\n\n_Note: {n.replace(path, name)}._" for n in stats.notes)


@GPU
def _colorize_clip(model: str, path: str, out: Path, temporal: bool, size: int, report):
    return colorize_video(get_colorizer(model), path, out, temporal, render_size=size, max_seconds=MAX_VIDEO_SECONDS,
                          max_megapixels=MAX_VIDEO_MEGAPIXELS, budget=VIDEO_BUDGET, progress=report)


SUGGESTER = next((name for name in WEIGHTS if read_metadata(WEIGHTS[name])["model"]["args"].get("output")
                  == "classification"), None)


async def suggest(gray: dict | None, render_size: int, event: gr.SelectData, request: gr.Request = None):
    """Colours the classification model finds likely at the clicked point: shown, and put on the brush."""
    if SUGGESTER is None:
        raise gr.Error("Upload a photo first.")
    gray_path = _upload_path(gray)
    x, y = (int(v) for v in event.index)
    size = _render_size(render_size)
    header = read_header(gray_path)
    seconds = 0.0 if header is None else COSTS.suggest(header.size, size, ARCHITECTURES[SUGGESTER])
    colours = await _in_lane(_lane(seconds), request, seconds, _suggest, gray_path, (x, y), size)
    swatches = " ".join(f'<span title="{share:.0%}" style="display:inline-block;width:2.2em;height:2.2em;'
                        f'border-radius:4px;background:{colour}"></span>' for colour, share in colours)
    shares = ", ".join(f"{colour} {share:.0%}" for colour, share in colours)
    html = f"<div>Likely colours at ({x}, {y}), now on the brush: {swatches}</div><small>{shares}</small>"
    palette = [colour for colour, _ in colours]
    return html, gr.ImageEditor(brush=gr.Brush(colors=palette + HINT_COLOURS, default_color=palette[0]))


def _suggest(gray_path: str, point: tuple[int, int], size: int) -> list[tuple[str, float]]:
    try:
        l = prepare(read_image(gray_path, MAX_MEGAPIXELS), MAX_MEGAPIXELS).l
        return suggested_colours(get_colorizer(SUGGESTER), l, point, 6, size)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


# delete_cache: every hour, uploads and results older than an hour are removed, so a long-running Space never fills up.
with gr.Blocks(title="Colorize a photo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
    gr.Markdown(f"# Colorize black-and-white photos and film\nUpload a photo (up to {MAX_MEGAPIXELS:g} megapixels and "
                f"{MAX_UPLOAD_MB:g} MB) and press **Colorize**: the network guesses the colours from the gray image, and "
                "the result keeps your photo's full resolution. Try a colour photo to see how close the guess comes to "
                "the real colours.")
    with gr.Tab("Photo"):
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
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Your colours\nWrong colour, or too pale? Paint a few strokes or dots on the photo in the "
                            "colours you want and press **Colorize** again: each colour spreads over its region, along "
                            "the photo's edges. The eraser and undo are in the toolbar.")
                editor = gr.ImageEditor(label="Paint colours here", type="filepath", image_mode="RGBA", sources=[],
                                        transforms=[], layers=False, format="png", elem_id="hints",
                                        brush=gr.Brush(colors=HINT_COLOURS, default_color=HINT_COLOURS[0],
                                                       color_mode="defaults"))
            with gr.Column(visible=SUGGESTER is not None):
                gr.Markdown("### Not sure what colour it was?\nClick a spot: the classification model offers the colours "
                            "it finds likely there, and puts them on the brush.")
                picker = gr.Image(label="Click for suggested colours", interactive=False, type="filepath")
                suggestions = gr.HTML()
        gr.Examples(EXAMPLES, inputs=photo, label="Examples (sources and licences: examples/ATTRIBUTION.md)")
    with gr.Tab("Video"):
        gr.Markdown(f"Upload a clip of up to {MAX_VIDEO_SECONDS:g} s and {VIDEO_BUDGET.frames} frames, with frames "
                    f"of up to {MAX_VIDEO_MEGAPIXELS:g} megapixels (640x360 is 0.23). Each frame keeps its own "
                    "lightness; with **Steady colours**, each frame's colours follow the previous frame's along the "
                    "motion, so they do not flicker. The result is an H.264 MP4 at the clip's frame rate, with its "
                    "sound.")
        with gr.Row():
            with gr.Column():
                clip = gr.Video(label="Clip", sources=["upload"])
                clip_model = gr.Dropdown(model.choices, value=DEFAULT_MODEL, label="Model")
                clip_size = gr.Slider(*RENDER_SIZES, value=DEFAULT_SIZE, step=32, label="Render size")
                temporal = gr.Checkbox(value=True, label="Steady colours",
                                       info="Off: every frame colorized alone (flickers; for comparison).")
                clip_button = gr.Button("Colorize clip", variant="primary")
            with gr.Column():
                clip_result = gr.Video(label="Colorized clip", interactive=False)
                clip_report = gr.Markdown()
    model.change(lambda name: get_colorizer(name).render_size, model, size, api_visibility="private")
    # preprocess=False: the handlers get the raw upload, so even a file Pillow cannot open gets read_image's message,
    # and no path reaches Pillow before _stored_file has checked it (Gradio's preprocess would open it as given).
    # The photo handlers share one concurrency group sized to the lanes; the clips have their own.
    lanes = {"concurrency_id": "photo lanes", "concurrency_limit": PHOTOS_ADMITTED}
    photo.change(show_gray, photo, [editor, picker], preprocess=False, api_visibility="private", **lanes)
    picker.select(suggest, [picker, size], [suggestions, editor], preprocess=False, api_visibility="private", **lanes)
    button.click(colorize, [photo, model, size, intensity, editor], [slider, download, report], api_name="colorize",
                 preprocess=False, **lanes)
    clip_model.change(lambda name: get_colorizer(name).render_size, clip_model, clip_size, api_visibility="private")
    # The clip goes in as uploaded (preprocess=False): Gradio would otherwise re-encode it with an ffmpeg binary.
    clip_button.click(colorize_clip, [clip, clip_model, clip_size, temporal], [clip_result, clip_report],
                      api_name="colorize_clip", preprocess=False, concurrency_id="clips",
                      concurrency_limit=CLIPS_ADMITTED)

if __name__ == "__main__":
    demo.queue(max_size=QUEUE_SIZE).launch(max_file_size=f"{MAX_UPLOAD_MB:g}mb")
