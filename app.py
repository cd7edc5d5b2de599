"""Gradio demo: upload a photo, get it colorized at full resolution. Run: python app.py

The page and its wiring; limits, lanes, request checks, files and the work of each request are in
colorization.serving."""

import functools
import math
import os
from pathlib import Path

import gradio as gr

try:  # on a Hugging Face ZeroGPU Space, borrow a GPU per call (imported before torch is used, as ZeroGPU asks)
    from spaces import GPU
except ImportError:  # elsewhere a no-op, in both of spaces.GPU's forms: @GPU and @GPU(duration=...)
    def GPU(task=None, **_):  # noqa: N802
        return task if task is not None else (lambda fn: fn)

from colorization import Colorizer, available_weights, load_colorizer, read_metadata
from colorization.serving import (Lanes, Limits, RequestError, Variant, architecture, choice, colorize_batch,
                                  colorize_clip_upload, colorize_seconds, colorize_upload, compare, compare_seconds,
                                  flag, gray_seconds, gray_version, hint_files, live_preview, live_seconds, number,
                                  plan_batch, render_size, session_key, share_cpu, show_matches, store_blobs, suggest_at,
                                  suggest_seconds, upload_files, upload_path)

try:  # a free 2-vCPU Space's limits, or what the host's COLORIZE_* variables say
    LIMITS = Limits.from_environment()
except ValueError as exc:
    raise SystemExit(str(exc)) from None
share_cpu(LIMITS.concurrency)
LANES = Lanes(LIMITS)
WEIGHTS = {path.name: path for path in available_weights()}  # best first
if not WEIGHTS:
    raise SystemExit("No weights/*.safetensors found: train a model or download the weights first.")
ARCHITECTURES = {name: architecture(read_metadata(path)) for name, path in WEIGHTS.items()}  # what a pass costs
SUGGESTER = next((name for name, arch in ARCHITECTURES.items() if arch.endswith(" classification")), None)
EXAMPLES = sorted(str(p) for p in (Path(__file__).parent / "examples").glob("*.jpg"))
# The brush's palette before any suggestion: strong, distinct hues (only their chroma is used; L stays the photo's).
# How far painted colours reach (colorization.hints.REACH): their own object, or the whole photo for a colour cast.
REACHES = {"their object": "object", "the whole photo (a colour cast)": "photo"}
HINT_COLOURS = ["#d62728", "#ff7f0e", "#f2c500", "#2ca02c", "#17becf", "#1f77b4", "#6a3d9a", "#e377c2", "#8c564b"]


@functools.lru_cache(maxsize=None)
def get_colorizer(name: str) -> Colorizer:
    """Each model is loaded once, on first use, and kept."""
    try:
        return load_colorizer(WEIGHTS[name])
    except (ValueError, OSError) as exc:  # WeightsError: a damaged file
        raise RequestError(f"The model {name} could not be loaded: {exc}") from None


DEFAULT_MODEL = next(iter(WEIGHTS))
DEFAULT_SIZE = get_colorizer(DEFAULT_MODEL).render_size  # also loads the default model before the first visitor
if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU: every model on "cuda" before launch, moved to each worker's GPU
    for _name in WEIGHTS:
        get_colorizer(_name)


def _on_gpu(seconds):
    """Run the work on a ZeroGPU Space's GPU (spaces.GPU), asking for ``seconds`` (a function of the work's
    arguments). ZeroGPU runs it in a forked worker, which pickles the arguments and the result (no closures) and
    sends back a gr.Error's message but only the class name of any other exception: a RequestError becomes one."""
    def decorate(work):
        @functools.wraps(work)
        def run(*args):
            try:
                return work(*args)
            except RequestError as exc:
                raise gr.Error(str(exc)) from None
        return GPU(run, duration=seconds)
    return decorate


def _gpu_seconds(cpu_seconds: float) -> int:
    """ZeroGPU's duration for work estimated at ``cpu_seconds`` of one CPU thread: the most a call may hold the GPU
    (60 unless asked); asking less queues sooner and fits more visitors' daily quota. The CPU estimate bounds the
    GPU's time; 10 s more start a worker (fork, weights to the GPU); at most 120 (a big batch)."""
    return min(120, 10 + math.ceil(cpu_seconds))


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


def _notes(notes: list[str]) -> str:
    return "".join(f"\n\n_Note: {note}._" for note in notes)


def _user_errors(handler):
    """A handler whose refusals and failures (RequestError, Busy) reach the user as one message."""
    @functools.wraps(handler)
    async def wrapped(*args, **kwargs):
        try:
            return await handler(*args, **kwargs)
        except RequestError as exc:
            raise gr.Error(str(exc)) from None
    return wrapped


def _session(request: gr.Request | None) -> str:
    """Whose share of a lane a request counts against: its session's, or its address's when it sent none."""
    return session_key(request.session_hash, request.client.host if request.client else None) if request else "-"


def _render_size(value) -> int:
    return render_size(value, LIMITS.render_sizes)


@_user_errors
async def colorize(image: dict | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE,
                   intensity: float = 1.0, hints: dict | None = None, reach: str = "object",
                   reference: dict | None = None, request: gr.Request = None):
    """Colorize an uploaded photo, with the colours painted on it if any; returns (gray, colorized) for the
    slider, the PNG's path and a note. ``hints``: the editor's value, whose layers are RGBA images of the photo's
    size (API: ``{"background": None, "layers": [handle_file("hints.png")], "composite": None}``)."""
    path = upload_path(image, demo.GRADIO_CACHE)
    model = choice(model, "model", WEIGHTS)
    size = _render_size(render_size)
    intensity = number(intensity, "Colour intensity", 0.0, LIMITS.max_intensity)
    layers = hint_files(hints, demo.GRADIO_CACHE, LIMITS.max_hint_layers)
    reach = choice(reach, "reach", REACHES.values())
    ref = _reference(reference)
    name = str(image.get("orig_name") or "upload")
    seconds = colorize_seconds(path, size, ARCHITECTURES[model], layers, ref)
    result = await LANES.run(_session(request), seconds, _colorize, model, path, name, size, intensity, layers, reach,
                             ref)
    title = get_colorizer(model).title
    painted = f" and your colours ({result.painted:.1%} of the photo painted)" if result.painted else ""
    note = (metrics_table(title + painted, result.scores) if result.scores
            else f"Colorized with **{title}** at render size {size}{painted}.")
    return (str(result.gray), str(result.colorized)), str(result.colorized), note + _notes(result.notes)


@_on_gpu(lambda model, path, name, size, intensity, layers, reach, ref:
         _gpu_seconds(colorize_seconds(path, size, ARCHITECTURES[model], layers, ref)))
def _colorize(model: str, path: str, name: str, size: int, intensity: float, layers: list[str], reach: str,
              ref: str | None):
    return colorize_upload(get_colorizer(model), path, name, demo.GRADIO_CACHE, size, intensity, layers,
                           LIMITS.max_megapixels, reach, ref)


def _reference(value: dict | None) -> str | None:
    """The stored reference photo of an upload's value, or None for none."""
    return None if value is None else upload_path(value, demo.GRADIO_CACHE, "Upload a reference photo first.")


def _painted(value: dict | None) -> list[str]:
    """The canvas's painted layers as stored files. The page sends them on the canvas's own events as blobs the
    component keeps (``{"id": ...}``, taken here), otherwise as uploaded files (as the API does)."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        blobs = canvas.blob_storage.pop(value["id"], None)
        while len(canvas.blob_storage) > 64:  # the blobs of events that always_last skipped: the oldest go
            canvas.blob_storage.pop(next(iter(canvas.blob_storage)))
        layers = [layer for layer in blobs.layers if layer] if blobs else []
        return store_blobs(layers, demo.GRADIO_CACHE, LIMITS.max_hint_layers)
    return hint_files(value, demo.GRADIO_CACHE, LIMITS.max_hint_layers)


@_user_errors
async def take_upload(file: dict | None):
    """An uploaded photo becomes the photo: its gray version goes on the canvas, and Colorize (or the API) takes it."""
    return upload_path(file, demo.GRADIO_CACHE)


@_user_errors
async def live(image: dict | None, value: dict | None, model: str, render_size: int, intensity: float,
               reach: str = "object", reference: dict | None = None, request: gr.Request = None):
    """The photo colorized at screen size with the colours painted on the canvas so far, after each stroke; returns
    (gray, colorized) for the slider."""
    if image is None:
        return None
    path, layers = upload_path(image, demo.GRADIO_CACHE), _painted(value)
    model = choice(model, "model", WEIGHTS)
    size = _render_size(render_size)
    intensity = number(intensity, "Colour intensity", 0.0, LIMITS.max_intensity)
    reach = choice(reach, "reach", REACHES.values())
    ref = _reference(reference)
    seconds = live_seconds(path, size, ARCHITECTURES[model], layers, ref)
    gray, colorized = await LANES.run(_session(request), seconds, _live, model, path, size, intensity, layers, reach,
                                      ref)
    return str(gray), str(colorized)


@_on_gpu(lambda model, path, size, intensity, layers, reach, ref:
         _gpu_seconds(live_seconds(path, size, ARCHITECTURES[model], layers, ref)))
def _live(model: str, path: str, size: int, intensity: float, layers: list[str], reach: str, ref: str | None):
    return live_preview(get_colorizer(model), path, demo.GRADIO_CACHE, size, intensity, layers, LIMITS.max_megapixels,
                        reach=reach, reference=ref)


@_user_errors
async def matches(image: dict | None, reference: dict | None, model: str, render_size: int,
                  request: gr.Request = None):
    """Where the reference's colours were taken and put: the photo and the reference with a disc per kept match."""
    path, ref = upload_path(image, demo.GRADIO_CACHE), _reference(reference)
    if ref is None:
        raise RequestError("Upload a reference photo first.")
    model, size = choice(model, "model", WEIGHTS), _render_size(render_size)
    seconds = live_seconds(path, size, ARCHITECTURES[model], (), ref)
    photo, shown, share, gated = await LANES.run(_session(request), seconds, _matches, model, path, ref, size)
    note = (f"{share:.0%} of the photo's cells matched the reference confidently"
            + (": too few to trust, so the reference gave no colour." if gated else "; each disc is one match, "
               "in the colour it gave."))
    return [(str(photo), "Your photo: where each colour went"), (str(shown), "The reference: where it came from")], note


@_on_gpu(lambda model, path, ref, size: _gpu_seconds(live_seconds(path, size, ARCHITECTURES[model], (), ref)))
def _matches(model: str, path: str, ref: str, size: int):
    return show_matches(get_colorizer(model), path, ref, demo.GRADIO_CACHE, size, LIMITS.max_megapixels)


@_user_errors
async def show_gray(image: dict | None, request: gr.Request = None):
    """A new photo: its gray version as the canvas to paint colours on (no strokes yet) and to click for suggestions."""
    if image is None:
        return None, None
    path = upload_path(image, demo.GRADIO_CACHE)
    gray = await LANES.run(_session(request), gray_seconds(path), gray_version, path, demo.GRADIO_CACHE,
                           LIMITS.max_megapixels)
    return {"background": str(gray), "layers": [], "composite": None}, str(gray)


@_user_errors
async def colorize_clip(video: dict | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE,
                        temporal: bool = True, reference: dict | None = None, request: gr.Request = None,
                        progress=gr.Progress()):
    """Colorize an uploaded clip (steadied over time unless ``temporal`` is false, every frame with the colours of a
    ``reference`` photo if given); returns the MP4's path and a note."""
    path = upload_path(video, demo.GRADIO_CACHE, "Upload a clip first.")
    model = choice(model, "model", WEIGHTS)
    size = _render_size(render_size)
    temporal = flag(temporal, "Steady colours")
    name = str(video.get("orig_name") or "clip")
    ref = _reference(reference)
    result = await LANES.run(_session(request), _clip_seconds(ref), _colorize_clip, model, path, name, size,
                             temporal, progress, ref, big=True)
    stats = result.stats
    steady = (f"steadied over time (blend {stats.blend:g}, {stats.reliable:.0%} of the pixels followed the motion, "
              f"{stats.scene_cuts} scene cuts)" if stats.temporal else "each frame alone")
    note = (f"{stats.frames} frames of {stats.width}x{stats.height} at {stats.fps:.3g} frames/s, {steady}, "
            f"in {stats.seconds:.1f} s; audio: {stats.audio or 'none'}.")
    return str(result.path), note + _notes(result.notes)


def _clip_seconds(reference: str | None) -> float:
    """What a clip counts for: its budget of frames, twice over with a reference (the encoder's pass on each frame
    for the matching, counted as a whole pass: an upper bound)."""
    return LIMITS.clip_seconds * (2 if reference else 1)


@_on_gpu(lambda model, path, name, size, temporal, progress, ref: _gpu_seconds(_clip_seconds(ref)))
def _colorize_clip(model: str, path: str, name: str, size: int, temporal: bool, progress: gr.Progress,
                   ref: str | None):
    def report(done: int, total: int | None) -> None:  # made in the worker: a closure does not pickle
        progress((done, total) if total else None, desc="colorizing frames", unit="frames")

    return colorize_clip_upload(get_colorizer(model), path, name, demo.GRADIO_CACHE, size, temporal, LIMITS, report,
                                ref)


@_user_errors
async def colorize_many(files: list | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE,
                        intensity: float = 1.0, request: gr.Request = None, progress=gr.Progress()):
    """Colorize several photos, or ZIPs of photos, at full resolution; returns one ZIP of PNGs named after them and a
    note naming any that could not be colorized."""
    uploads = upload_files(files, demo.GRADIO_CACHE, LIMITS.max_batch_photos)
    model = choice(model, "model", WEIGHTS)
    size = _render_size(render_size)
    intensity = number(intensity, "Colour intensity", 0.0, LIMITS.max_intensity)
    session = _session(request)
    batch = await LANES.run(session, 0.0, plan_batch, uploads, demo.GRADIO_CACHE, LIMITS)  # headers, ZIP directories
    result = await LANES.run(session, batch.seconds(size, ARCHITECTURES[model]), _colorize_many, model, batch, size,
                             intensity, progress, big=True)
    left_out = len(batch.items) - result.colorized
    note = (f"{result.colorized} photos colorized with **{get_colorizer(model).title}** at render size {size}"
            + (f"; {left_out} could not be" if left_out else "") + ".")
    return str(result.path), note + _notes(result.notes)


@_on_gpu(lambda model, batch, size, intensity, progress: _gpu_seconds(batch.seconds(size, ARCHITECTURES[model])))
def _colorize_many(model: str, batch, size: int, intensity: float, progress: gr.Progress):
    def report(done: int, total: int) -> None:  # made in the worker: a closure does not pickle
        progress((done, total), desc="colorizing photos", unit="photos")

    return colorize_batch(get_colorizer(model), batch, demo.GRADIO_CACHE, size, intensity, LIMITS.max_megapixels,
                          report)


COMPARISONS = {"every model": "models", "render sizes": "sizes"}
COMPARED_SIZES = [s for s in (128, 256, 384, 512) if LIMITS.render_sizes[0] <= s <= LIMITS.render_sizes[1]]


@_user_errors
async def compare_photo(image: dict | None, what: str = "every model", model: str = DEFAULT_MODEL,
                        intensity: float = 1.0, request: gr.Request = None):
    """The photo under every model (each at its own render size), or under the chosen model at a few render sizes,
    side by side at screen size; returns the gallery's (PNG, caption) pairs and a note."""
    path = upload_path(image, demo.GRADIO_CACHE)
    what = COMPARISONS[choice(what, "comparison", COMPARISONS)]
    model = choice(model, "model", WEIGHTS)
    intensity = number(intensity, "Colour intensity", 0.0, LIMITS.max_intensity)
    variants = ([(name, None) for name in WEIGHTS] if what == "models" else [(model, s) for s in COMPARED_SIZES])
    seconds = compare_seconds(path, [(size or DEFAULT_SIZE, ARCHITECTURES[name]) for name, size in variants])
    name = str(image.get("orig_name") or "upload")
    result = await LANES.run(_session(request), seconds, _compare, variants, path, name, intensity)
    note = "Pick the one that looks right by eye, then colorize at full resolution with it."
    if result.scores:  # a colour photo: each scored against it, the learning moment of the Photo tab
        record = next(iter(result.scores.values()))
        rows = [("Gray baseline", record["gray"])] + [(label, r["model"]) for label, r in result.scores.items()]
        note = ("Each is scored against your original (PSNR in dB, higher is closer); colourfulness says how vivid it "
                "is.\n\n| | PSNR (dB) | Colourfulness |\n|---|---:|---:|\n"
                + "".join(f"| {label} | {s['psnr']:.2f} | {s['colorfulness']:.1f} |\n" for label, s in rows)
                + f"| Your original | | {record['ground_truth']['colorfulness']:.1f} |")
    return [(str(png), caption) for png, caption in result.images], note + _notes(result.notes)


@_on_gpu(lambda variants, path, name, intensity: _gpu_seconds(
    compare_seconds(path, [(size or DEFAULT_SIZE, ARCHITECTURES[model]) for model, size in variants])))
def _compare(variants: list[tuple[str, int | None]], path: str, name: str, intensity: float):
    chosen = [Variant(get_colorizer(model).title if size is None else f"render size {size}", get_colorizer(model),
                      size or get_colorizer(model).render_size) for model, size in variants]
    return compare(chosen, path, name, demo.GRADIO_CACHE, intensity, LIMITS.max_megapixels)


@_user_errors
async def suggest(gray: dict | None, render_size: int, event: gr.SelectData, request: gr.Request = None):
    """Colours the classification model finds likely at the clicked point: shown, and put on the brush."""
    if SUGGESTER is None:
        raise RequestError("Upload a photo first.")
    path = upload_path(gray, demo.GRADIO_CACHE)
    x, y = (int(v) for v in event.index)
    size = _render_size(render_size)
    colours = await LANES.run(_session(request), suggest_seconds(path, size, ARCHITECTURES[SUGGESTER]), _suggest,
                              path, (x, y), size)
    swatches = " ".join(f'<span title="{share:.0%}" style="display:inline-block;width:2.2em;height:2.2em;'
                        f'border-radius:4px;background:{colour}"></span>' for colour, share in colours)
    shares = ", ".join(f"{colour} {share:.0%}" for colour, share in colours)
    html = f"<div>Likely colours at ({x}, {y}), now on the brush: {swatches}</div><small>{shares}</small>"
    palette = [colour for colour, _ in colours]
    return html, gr.ImageEditor(brush=gr.Brush(colors=palette + HINT_COLOURS, default_color=palette[0]))


@_on_gpu(lambda path, point, size: _gpu_seconds(suggest_seconds(path, size, ARCHITECTURES[SUGGESTER])))
def _suggest(path: str, point: tuple[int, int], size: int) -> list[tuple[str, float]]:
    return suggest_at(get_colorizer(SUGGESTER), path, point, size, max_megapixels=LIMITS.max_megapixels)


# delete_cache: every hour, uploads and results older than an hour are removed, so a long-running Space never fills up.
with gr.Blocks(title="Colorize a photo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
    gr.Markdown(f"# Colorize black-and-white photos and film\nUpload a photo (up to {LIMITS.max_megapixels:g} megapixels "
                f"and {LIMITS.max_upload_mb:g} MB) and press **Colorize**: the network guesses the colours from the gray "
                "image, and the result keeps your photo's full resolution. Try a colour photo to see how close the guess "
                "comes to the real colours.")
    with gr.Tab("Photo"):
        with gr.Row():
            with gr.Column():
                upload = gr.UploadButton("Upload a photo", file_types=["image"], variant="primary")
                canvas = gr.ImageEditor(label="Your photo: paint colours on it", type="filepath", image_mode="RGBA",
                                        sources=[], transforms=[], layers=False, format="png",
                                        elem_id="canvas", brush=gr.Brush(colors=HINT_COLOURS,
                                                                         default_color=HINT_COLOURS[0],
                                                                         color_mode="defaults"))
                photo = gr.Image(type="filepath", image_mode=None, visible=False)  # the upload: what Colorize takes
            with gr.Column():
                slider = gr.ImageSlider(label="Gray | colorized: follows your strokes", format="png")
                download = gr.File(label="Full-resolution PNG")
                report = gr.Markdown()
        gr.Markdown("Wrong colour, or too pale? Paint a few strokes or dots in the colours you want on the photo: each "
                    "colour spreads over its region along the photo's edges, and the result beside it follows each "
                    "stroke (the eraser and undo are in the toolbar). **Colorize** gives the full-resolution PNG.")
        with gr.Accordion("Colour like a reference photo: a colour photo of the same place, person or kind of scene",
                          open=False):
            with gr.Row():
                reference = gr.Image(label="Reference photo (optional)", type="filepath", image_mode=None,
                                     sources=["upload", "clipboard"], height=280, elem_id="reference")
                with gr.Column():
                    gr.Markdown("Where the two photos match confidently, the reference's colours become colours "
                                "painted for you (yours win where both speak). A reference of another scene matches "
                                "too little and gives nothing.")
                    matches_button = gr.Button("Show what was taken from where")
            matched = gr.Gallery(label="Matches", columns=2, height=300, format="png", elem_id="matches")
            matches_note = gr.Markdown()
        reach = gr.Radio(list(REACHES.items()), value="object", label="Your colours reach",
                         info="The whole photo: a colour that spreads everywhere along the photo's edges, for a warmer "
                              "or cooler photo.")
        with gr.Row():
            with gr.Column():
                model = gr.Dropdown([(read_metadata(p).get("title") or p.stem, name) for name, p in WEIGHTS.items()],
                                    value=DEFAULT_MODEL, label="Model")
                size = gr.Slider(*LIMITS.render_sizes, value=DEFAULT_SIZE, step=32, label="Render size",
                                 info="Higher keeps small details; lower gives steadier colours.")
                intensity = gr.Slider(0.0, LIMITS.max_intensity, value=1.0, step=0.05, label="Colour intensity",
                                      info="1.0 is the model's own output; 0 is gray.")
            with gr.Column():
                button = gr.Button("Colorize", variant="primary")
                compare_what = gr.Radio(list(COMPARISONS), value="every model", label="Compare side by side")
                compare_button = gr.Button("Compare")
        gallery = gr.Gallery(label="Side by side", columns=len(WEIGHTS) + 2, height=320, format="png",
                             elem_id="compare")
        compare_report = gr.Markdown()
        with gr.Accordion("Not sure what colour it was? Click a spot for the colours the classification model finds "
                          "likely there; they go on the brush.", open=False, visible=SUGGESTER is not None):
            picker = gr.Image(label="Click for suggested colours", interactive=False, type="filepath", height=360)
            suggestions = gr.HTML()
        gr.Examples(EXAMPLES, inputs=photo, label="Examples (sources and licences: examples/ATTRIBUTION.md)")
    with gr.Tab("Many photos"):
        gr.Markdown(f"Upload up to {LIMITS.max_batch_photos} photos, or ZIPs of them, with up to "
                    f"{LIMITS.max_batch_megapixels:g} megapixels in all, and get back one ZIP of full-resolution PNGs "
                    "named after them. A file that cannot be colorized is named in the note; the others are still done.")
        with gr.Row():
            with gr.Column():
                many = gr.File(label="Photos or ZIPs", file_count="multiple", file_types=["image", ".zip"])
                many_model = gr.Dropdown(model.choices, value=DEFAULT_MODEL, label="Model")
                many_size = gr.Slider(*LIMITS.render_sizes, value=DEFAULT_SIZE, step=32, label="Render size")
                many_intensity = gr.Slider(0.0, LIMITS.max_intensity, value=1.0, step=0.05, label="Colour intensity")
                many_button = gr.Button("Colorize all", variant="primary")
            with gr.Column():
                many_result = gr.File(label="Colorized photos (ZIP)")
                many_report = gr.Markdown()
    with gr.Tab("Video"):
        gr.Markdown(f"Upload a clip of up to {LIMITS.max_video_seconds:g} s and {LIMITS.video_budget.frames} frames, "
                    f"with frames of up to {LIMITS.max_video_megapixels:g} megapixels (640x360 is 0.23). Each frame "
                    "keeps its own lightness; with **Steady colours**, each frame's colours follow the previous frame's "
                    "along the motion, so they do not flicker. The result is an H.264 MP4 at the clip's frame rate, with "
                    "its sound.")
        with gr.Row():
            with gr.Column():
                clip = gr.Video(label="Clip", sources=["upload"])
                clip_model = gr.Dropdown(model.choices, value=DEFAULT_MODEL, label="Model")
                clip_size = gr.Slider(*LIMITS.render_sizes, value=DEFAULT_SIZE, step=32, label="Render size")
                temporal = gr.Checkbox(value=True, label="Steady colours",
                                       info="Off: every frame colorized alone (flickers; for comparison).")
                clip_reference = gr.Image(label="Reference photo (optional): its colours, where they match, for "
                                                "every frame", type="filepath", image_mode=None, sources=["upload"],
                                          height=200)
                clip_button = gr.Button("Colorize clip", variant="primary")
            with gr.Column():
                clip_result = gr.Video(label="Colorized clip", interactive=False)
                clip_report = gr.Markdown()
    model.change(lambda name: get_colorizer(name).render_size, model, size, api_visibility="private")
    # preprocess=False: the handlers get the raw upload, so even a file Pillow cannot open gets read_image's message,
    # and no path reaches Pillow before serving.stored_file has checked it (Gradio's preprocess would open it as given).
    # The photo handlers share one concurrency group sized to the lanes, the clips have their own: admitted requests
    # wait for their lane holding no thread (colorization.serving.Lanes), the others wait in the queue.
    lanes = {"concurrency_id": "photo lanes", "concurrency_limit": LIMITS.photos_admitted}
    # An upload (or an example) becomes the photo, whose gray version goes on the canvas; each change of the photo, of
    # the canvas or of the settings recolours the preview beside it, the latest only (always_last).
    upload.upload(take_upload, upload, photo, preprocess=False, api_visibility="private")
    photo.change(show_gray, photo, [canvas, picker], preprocess=False, api_visibility="private", **lanes)
    gr.on([photo.change, canvas.change, model.change, size.change, intensity.release, reach.change, reference.change],
          live, [photo, canvas, model, size, intensity, reach, reference], slider,
          trigger_mode="always_last", show_progress="hidden", preprocess=False, api_visibility="private", **lanes)
    picker.select(suggest, [picker, size], [suggestions, canvas], preprocess=False, api_visibility="private", **lanes)
    matches_button.click(matches, [photo, reference, model, size], [matched, matches_note], preprocess=False,
                         api_visibility="private", **lanes)
    button.click(colorize, [photo, model, size, intensity, canvas, reach, reference], [slider, download, report],
                 api_name="colorize",
                 preprocess=False, **lanes)
    compare_button.click(compare_photo, [photo, compare_what, model, intensity], [gallery, compare_report],
                         api_name="compare", preprocess=False, **lanes)
    # Many photos take the big lane, one batch at a time; planning one (headers, ZIP directories) is quick.
    many_model.change(lambda name: get_colorizer(name).render_size, many_model, many_size, api_visibility="private")
    many_button.click(colorize_many, [many, many_model, many_size, many_intensity], [many_result, many_report],
                      api_name="colorize_batch", preprocess=False, concurrency_id="batches",
                      concurrency_limit=LIMITS.clips_admitted)
    clip_model.change(lambda name: get_colorizer(name).render_size, clip_model, clip_size, api_visibility="private")
    # The clip goes in as uploaded (preprocess=False): Gradio would otherwise re-encode it with an ffmpeg binary.
    clip_button.click(colorize_clip, [clip, clip_model, clip_size, temporal, clip_reference],
                      [clip_result, clip_report], api_name="colorize_clip", preprocess=False, concurrency_id="clips",
                      concurrency_limit=LIMITS.clips_admitted)

if __name__ == "__main__":
    demo.queue(max_size=LIMITS.queue_size).launch(max_file_size=f"{LIMITS.max_upload_mb:g}mb")
