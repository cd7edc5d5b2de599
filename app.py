"""Gradio demo: upload a photo, get it colorized at full resolution. Run: python app.py"""

import functools
import tempfile
from pathlib import Path

import gradio as gr
import torch

from colorization import Colorizer, available_weights, load_colorizer, read_image, read_metadata
from colorization.data import is_grayish
from colorization.evaluation import score_prepared
from colorization.pipeline import prepare

try:  # on a Hugging Face ZeroGPU Space, borrow a GPU per call; elsewhere a no-op
    from spaces import GPU
except ImportError:
    GPU = lambda fn: fn  # noqa: E731

MAX_MEGAPIXELS = 40.0
CONCURRENCY = 2  # photos colorized at once
# Each request gets its share of the CPU threads: oversubscribed OpenMP threads spin-wait, which on 2 busy cores
# made one forward pass 30x slower (0.09 s -> 3 s).
torch.set_num_threads(max(1, torch.get_num_threads() // CONCURRENCY))
WEIGHTS = {path.name: path for path in available_weights()}  # best first
if not WEIGHTS:
    raise SystemExit("No weights/*.safetensors found: train a model or download the weights first.")
EXAMPLES = sorted(str(p) for p in (Path(__file__).parent / "examples").glob("*.jpg"))


@functools.lru_cache(maxsize=None)
def get_colorizer(name: str) -> Colorizer:
    """Each model is loaded once, on first use, and kept."""
    return load_colorizer(WEIGHTS[name])


DEFAULT_MODEL = next(iter(WEIGHTS))
DEFAULT_SIZE = get_colorizer(DEFAULT_MODEL).render_size  # also loads the default model before the first visitor


def metrics_table(title: str, scores: dict) -> str:
    """The learning moment: model vs gray baseline vs the original, as a Markdown table."""
    row = lambda m: f"{m['psnr']:.2f} | {m['ssim']:.3f} | {m['colorfulness']:.1f}"  # noqa: E731
    return (
        "**Your photo is already in colour**, so the model colorized its gray version and is scored "
        "against your original, beside the gray baseline (no colour at all):\n\n"
        "| | PSNR (dB) | SSIM | Colourfulness |\n|---|---:|---:|---:|\n"
        f"| {title} | {row(scores['model'])} |\n| Gray baseline | {row(scores['gray'])} |\n"
        f"| Your original | | | {scores['ground_truth']['colorfulness']:.1f} |\n\n"
        "Higher PSNR and SSIM mean closer to the original. The gray baseline often wins them: a wrong "
        "colour costs more than none, so a plausible colorization can still score lower."
    )


@GPU
def colorize(image: dict | None, model: str = DEFAULT_MODEL, render_size: int = DEFAULT_SIZE, intensity: float = 1.0):
    """Colorize an uploaded photo; returns (gray, colorized) for the slider, the PNG's path and a note."""
    if not image or not image.get("path"):
        raise gr.Error("Upload a photo first.")
    if model not in WEIGHTS:
        raise gr.Error(f"Unknown model {model!r}; choose one of: {', '.join(WEIGHTS)}.")
    upload_name = image.get("orig_name") or "upload"
    try:  # ImageError and WeightsError are ValueErrors whose message says what is wrong
        colorizer, render_size, intensity = get_colorizer(model), int(render_size), float(intensity)
        if not 128 <= render_size <= 512:  # the slider's range; Gradio's own check is skipped with preprocess=False
            raise ValueError(f"render size must be between 128 and 512, got {render_size}")
        prepared = prepare(read_image(image["path"], MAX_MEGAPIXELS), MAX_MEGAPIXELS)
        if is_grayish(prepared.pixels):
            result = colorizer.colorize_prepared(prepared, render_size, intensity)
            note = f"Colorized with **{colorizer.title}** at render size {render_size}."
        else:
            result, scores = score_prepared(colorizer, prepared, render_size, intensity)
            note = metrics_table(colorizer.title, scores)
    except ValueError as exc:
        raise gr.Error(str(exc).replace(image["path"], upload_name)) from None
    # A fresh folder per request inside Gradio's temporary folder: no two requests share a file.
    out = Path(tempfile.mkdtemp(dir=demo.GRADIO_CACHE)) / f"{Path(upload_name).stem}_colorized.png"
    result.save(out)
    return (prepared.gray, str(out)), str(out), note


# delete_cache: every hour, uploads and results older than an hour are removed, so a long-running Space never fills up.
with gr.Blocks(title="Colorize a photo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
    gr.Markdown(f"# Colorize a black-and-white photo\nUpload a photo (up to {MAX_MEGAPIXELS:g} megapixels) and press "
                "**Colorize**: the network guesses the colours from the gray image, and the result keeps your photo's "
                "full resolution. Try a colour photo to see how close the guess comes to the real colours.")
    with gr.Row():
        with gr.Column():
            photo = gr.Image(label="Photo", type="filepath", image_mode=None, sources=["upload", "clipboard"])
            model = gr.Dropdown([(read_metadata(p).get("title") or p.stem, name) for name, p in WEIGHTS.items()],
                                value=DEFAULT_MODEL, label="Model")
            size = gr.Slider(128, 512, value=DEFAULT_SIZE, step=32, label="Render size",
                             info="Higher keeps small details; lower gives steadier colours.")
            intensity = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Colour intensity",
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
    demo.queue(default_concurrency_limit=CONCURRENCY).launch()
