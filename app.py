"""Gradio demo: upload a photo, get it colorized at full resolution. Run: python app.py

The page and its wiring; checks, limits, lanes, files and the work of each request are colorization.service's."""

import functools
import os
from pathlib import Path

import gradio as gr
import pydantic

try:  # on a Hugging Face ZeroGPU Space, borrow a GPU per call (imported before torch is used, as ZeroGPU asks)
    from spaces import GPU
except ImportError:
    GPU = None

from colorization import available_weights
from colorization.serving import Limits, RequestError, session_key, share_cpu
from colorization.service import COMPARISONS, REACHES, Service

# What a click on the photo does. Gradio's image editor reports no clicks while it paints, so asking lays the same
# photo, clickable, over the canvas; the canvas stays in place underneath (laid out, its strokes kept).
MODES = {"Paint colours": "paint", "Ask what colour a spot was": "ask"}
# The switch happens in the browser alone (no round trip that a queued suggestion could overtake): one class on the
# photo's column says which layer is on top.
SHOW_MODE = "(mode) => { document.getElementById('paint-or-ask').classList.toggle('asking', mode === 'ask'); }"
PAGE_CSS = """
#photo-stack { position: relative; }
#paint-or-ask:not(.asking) #picker, #paint-or-ask:not(.asking) #where { display: none !important; }
#paint-or-ask.asking #picker { position: absolute; inset: 0; z-index: 1000; margin: 0;
                               background: var(--block-background-fill); }
#picker img { object-fit: contain; }
"""
# The brush's palette before any suggestion: strong, distinct hues (only their chroma is used; L stays the photo's).
HINT_COLOURS = ["#d62728", "#ff7f0e", "#f2c500", "#2ca02c", "#17becf", "#1f77b4", "#6a3d9a", "#e377c2", "#8c564b"]
EXAMPLES = sorted(str(p) for p in (Path(__file__).parent / "examples").glob("*.jpg"))


def on_gpu(work, seconds):
    """``work`` on a ZeroGPU Space's GPU (spaces.GPU) for about ``seconds(*args)`` of one CPU thread plus 10 s to start a
    worker, at most 120 (ZeroGPU's default is 60; asking less queues sooner and fits more visitors' daily quota). It
    runs in a forked worker that sends back a gr.Error's message but only the class name of other exceptions."""
    def run(*args):
        try:
            return work(*args)
        except RequestError as exc:
            raise gr.Error(str(exc)) from None
    return GPU(run, duration=lambda *args: min(120, 10 + int(seconds(*args)) + 1))


try:  # a free 2-vCPU Space's limits, or what the host's COLORIZE_* variables say
    LIMITS = Limits.from_environment()
    SERVICE = Service(LIMITS, available_weights(), gpu=on_gpu if GPU else lambda work, seconds: work)
except ValueError as exc:
    raise SystemExit(str(exc)) from None
share_cpu(LIMITS.concurrency)
DEFAULT_MODEL, DEFAULT_SIZE = SERVICE.default_model, SERVICE.default_size  # loads the default model before any visitor
if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU: every model on "cuda" before launch, moved to each worker's GPU
    for _name in SERVICE.weights:
        SERVICE.colorizer(_name)


class Page(gr.Blocks):
    """Blocks whose API answers a malformed value (a string where a file goes, a clip of ``{}``) in one sentence:
    Gradio checks it against the component's data model before any handler runs, and would answer no message."""

    async def preprocess_data(self, *args, **kwargs):
        try:
            return await super().preprocess_data(*args, **kwargs)
        except pydantic.ValidationError as exc:
            what = {"ImageData": "A photo", "VideoData": "A clip", "EditorData": "The painted colours",
                    "ListFiles": "The photos"}.get(exc.title, "This input")
            raise gr.Error(f"{what} must be sent as an uploaded file ({{\"path\": ...}}, as gradio_client's "
                           "handle_file sends it).") from None


def handler(fn):
    """A page handler whose refusals and failures (RequestError, Busy) reach the user as one message."""
    @functools.wraps(fn)  # Gradio reads the parameters (gr.Request, gr.Progress) and the API's docs from fn's
    async def run(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except RequestError as exc:
            raise gr.Error(str(exc)) from None
    return run


def _session(request: gr.Request | None) -> str:
    """Whose share of a lane a request counts against: its session's, or its address's when it sent none."""
    return session_key(request.session_hash, request.client.host if request.client else None) if request else "-"


@handler
async def colorize(image: dict | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE,
                   intensity: float = 1.0, hints: dict | None = None, reach: str = "object",
                   reference: dict | None = None, request: gr.Request = None):
    """Colorize an uploaded photo, with the colours painted on it if any; returns (gray, colorized) for the
    slider, the PNG's path and a note. ``hints``: the editor's value, whose layers are RGBA images of the photo's
    size (API: ``{"background": None, "layers": [handle_file("hints.png")], "composite": None}``)."""
    return await SERVICE.colorize(_session(request), image, model, render_size, intensity, hints, reach, reference)


@handler
async def compare(image: dict | None, what: str = "every model", model: str = DEFAULT_MODEL, intensity: float = 1.0,
                  request: gr.Request = None):
    """The photo under every model (each at its own render size), or under the chosen model at a few render sizes,
    side by side at screen size; returns the gallery's (PNG, caption) pairs and a note."""
    return await SERVICE.compare(_session(request), image, what, model, intensity)


@handler
async def colorize_many(files: list | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE,
                        intensity: float = 1.0, request: gr.Request = None, progress=gr.Progress()):
    """Colorize several photos, or ZIPs of photos, at full resolution; returns one ZIP of PNGs named after them and a
    note naming any that could not be colorized."""
    return await SERVICE.colorize_many(_session(request), files, model, render_size, intensity, progress)


@handler
async def colorize_clip(video: dict | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE,
                        temporal: bool = True, reference: dict | None = None, request: gr.Request = None,
                        progress=gr.Progress()):
    """Colorize an uploaded clip (steadied over time unless ``temporal`` is false, every frame with the colours of a
    ``reference`` photo if given); returns the MP4's path and a note."""
    return await SERVICE.colorize_clip(_session(request), video, model, render_size, temporal, reference, progress)


@handler
async def take_upload(file: dict | None):
    """An uploaded photo becomes the photo: its gray version goes on the canvas, and Colorize (or the API) takes it."""
    return SERVICE.stored_photo(file)


@handler
async def show_gray(image: dict | None, request: gr.Request = None):
    """A new photo: its gray version on the canvas to paint on (no strokes yet) and on the picker to click."""
    gray = await SERVICE.gray(_session(request), image)
    return (None, None) if gray is None else ({"background": gray, "layers": [], "composite": None}, gray)


@handler
async def live(image: dict | None, value: dict | None, model: str, render_size: int, intensity: float,
               reach: str = "object", reference: dict | None = None, request: gr.Request = None):
    """The photo at screen size with the colours painted on the canvas so far, after each stroke: (gray, colorized)
    for the slider. The page sends the canvas's layers as blobs the component keeps (``{"id": ...}``, taken here)."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        blobs = canvas.blob_storage.pop(value["id"], None)
        while len(canvas.blob_storage) > 64:  # the blobs of events that always_last skipped: the oldest go
            canvas.blob_storage.pop(next(iter(canvas.blob_storage)))
        layers = SERVICE.store_layers([layer for layer in blobs.layers if layer] if blobs else [])
    else:
        layers = SERVICE.hint_layers(value)
    return await SERVICE.live(_session(request), image, layers, model, render_size, intensity, reach, reference)


@handler
async def matches(image: dict | None, reference: dict | None, model: str, render_size: int,
                  request: gr.Request = None):
    """Where the reference's colours were taken and put: the photo and the reference with a disc per kept match."""
    return await SERVICE.matches(_session(request), image, reference, model, render_size)


@handler
async def where_to_click(image: dict | None, request: gr.Request = None):
    """The picker shows where a colour would help most: five numbered spots, best first."""
    return await SERVICE.where_to_click(_session(request), image)


@handler
async def suggest(image: dict | None, render_size: int, event: gr.SelectData, request: gr.Request = None):
    """Colours the classification model finds likely at the clicked point: shown, and put on the brush."""
    colours = await SERVICE.suggest(_session(request), image, event.index, render_size)
    swatches = " ".join(f'<span title="{share:.0%}" style="display:inline-block;width:2.2em;height:2.2em;'
                        f'border-radius:4px;background:{colour}"></span>' for colour, share in colours)
    html = (f"<div>Likely colours at ({event.index[0]}, {event.index[1]}), now on the brush: {swatches}</div>"
            f"<small>{', '.join(f'{colour} {share:.0%}' for colour, share in colours)}</small>")
    palette = [colour for colour, _ in colours] + HINT_COLOURS
    return html, gr.ImageEditor(brush=gr.Brush(colors=palette, default_color=palette[0])), "paint"  # back to paint


# delete_cache: every hour, uploads and results older than an hour are removed, so a long-running Space never fills up.
with Page(title="Colorize a photo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
    SERVICE.root = demo.GRADIO_CACHE  # the only folder requests read from: Gradio's uploads, examples and results
    gr.Markdown(f"# Colorize black-and-white photos and film\nUpload a photo (up to {LIMITS.max_megapixels:g} megapixels "
                f"and {LIMITS.max_upload_mb:g} MB) and press **Colorize**: the network guesses the colours from the gray "
                "image, and the result keeps your photo's full resolution. Try a colour photo to see how close the guess "
                "comes to the real colours.")
    with gr.Tab("Photo"):
        with gr.Row():
            with gr.Column(elem_id="paint-or-ask"):
                upload = gr.UploadButton("Upload a photo", file_types=["image"], variant="primary")
                mode = gr.Radio(list(MODES.items()), value="paint", show_label=False, elem_id="mode",
                                visible=SERVICE.suggester is not None)
                with gr.Column(elem_id="photo-stack"):
                    canvas = gr.ImageEditor(label="Your photo: paint colours on it", type="filepath",
                                            image_mode="RGBA", sources=[], transforms=[], layers=False, format="png",
                                            elem_id="canvas", brush=gr.Brush(colors=HINT_COLOURS,
                                                                             default_color=HINT_COLOURS[0],
                                                                             color_mode="defaults"))
                    picker = gr.Image(label="Your photo: click a spot for its likely colours", interactive=False,
                                      type="filepath", elem_id="picker")
                where_button = gr.Button("Where would a colour help most?", size="sm", elem_id="where")
                suggestions = gr.HTML(elem_id="suggestions")
                photo = gr.Image(type="filepath", image_mode=None, visible=False)  # the upload: what Colorize takes
            with gr.Column():
                slider = gr.ImageSlider(label="Gray | colorized: follows your strokes", format="png")
                download = gr.File(label="Full-resolution PNG")
                report = gr.Markdown()
        gr.Markdown("Wrong colour, or too pale? Paint a few strokes or dots in the colours you want on the photo: each "
                    "colour spreads over its region along the photo's edges, and the result beside it follows each "
                    "stroke (the eraser and undo are in the toolbar). Not sure what colour something was? **Ask what "
                    "colour a spot was** and click it: the colours the classification model finds likely there go on "
                    "the brush, and the canvas comes back. **Colorize** gives the full-resolution PNG.")
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
                model = gr.Dropdown([(title, name) for name, title in SERVICE.titles.items()],
                                    value=DEFAULT_MODEL, label="Model")
                size = gr.Slider(*LIMITS.render_sizes, value=DEFAULT_SIZE, step=32, label="Render size",
                                 info="Higher keeps small details; lower gives steadier colours.")
                intensity = gr.Slider(0.0, LIMITS.max_intensity, value=1.0, step=0.05, label="Colour intensity",
                                      info="1.0 is the model's own output; 0 is gray.")
            with gr.Column():
                button = gr.Button("Colorize", variant="primary")
                compare_what = gr.Radio(list(COMPARISONS), value="every model", label="Compare side by side")
                compare_button = gr.Button("Compare")
        gallery = gr.Gallery(label="Side by side", columns=len(SERVICE.weights) + 2, height=320, format="png",
                             elem_id="compare")
        compare_report = gr.Markdown()
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
    model.change(lambda name: SERVICE.colorizer(name).render_size, model, size, api_visibility="private")
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
    # The picker shows the gray photo, or where a colour would help most, at the photo's size: a click is a point of
    # the photo itself.
    mode.change(None, mode, None, js=SHOW_MODE)
    # The progress shows on the answer alone: on the canvas its overlay would swallow a stroke begun as it fades.
    picker.select(suggest, [photo, size], [suggestions, canvas, mode], preprocess=False, api_visibility="private",
                  show_progress_on=suggestions, **lanes)
    where_button.click(where_to_click, photo, [picker, suggestions], preprocess=False, api_visibility="private",
                       **lanes)
    matches_button.click(matches, [photo, reference, model, size], [matched, matches_note], preprocess=False,
                         api_visibility="private", **lanes)
    button.click(colorize, [photo, model, size, intensity, canvas, reach, reference], [slider, download, report],
                 api_name="colorize",
                 preprocess=False, **lanes)
    compare_button.click(compare, [photo, compare_what, model, intensity], [gallery, compare_report],
                         api_name="compare", preprocess=False, **lanes)
    # Many photos take the big lane, one batch at a time; planning one (headers, ZIP directories) is quick.
    many_model.change(lambda name: SERVICE.colorizer(name).render_size, many_model, many_size, api_visibility="private")
    many_button.click(colorize_many, [many, many_model, many_size, many_intensity], [many_result, many_report],
                      api_name="colorize_batch", preprocess=False, concurrency_id="batches",
                      concurrency_limit=LIMITS.clips_admitted)
    clip_model.change(lambda name: SERVICE.colorizer(name).render_size, clip_model, clip_size, api_visibility="private")
    # The clip goes in as uploaded (preprocess=False): Gradio would otherwise re-encode it with an ffmpeg binary.
    clip_button.click(colorize_clip, [clip, clip_model, clip_size, temporal, clip_reference],
                      [clip_result, clip_report], api_name="colorize_clip", preprocess=False, concurrency_id="clips",
                      concurrency_limit=LIMITS.clips_admitted)

if __name__ == "__main__":
    demo.queue(max_size=LIMITS.queue_size).launch(max_file_size=f"{LIMITS.max_upload_mb:g}mb", css=PAGE_CSS)
