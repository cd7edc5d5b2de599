"""The static page (web/): its ONNX graphs against the Python pipeline, then the page itself in a real headless
Chromium (Debian's package, never `playwright install`) with every request off the machine refused."""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import runpy
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_server import EXAMPLES, REPO
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, only_local

WEB = REPO / "web"
EXPORT = runpy.run_path(str(REPO / "release" / "export_onnx.py"))  # release/ holds scripts, not a package
STATIC = runpy.run_path(str(REPO / "release" / "static_space.py"))
PHOTOS = sorted(EXAMPLES.glob("*.jpg"))
MIN_PSNR = 35.0  # the page's result against the Python pipeline's, in dB (issue 29)


def _needed(condition: bool, reason: str) -> None:
    """Skip without a tool, except in CI, which installs it: there a missing tool is a failure."""
    if not condition:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)


@pytest.fixture(scope="module")
def graphs() -> Path:
    """The exported graphs in web/models/ (exported now unless the weights and the graphs' code are unchanged)."""
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package, reason=f"{package} is not installed (pip install -r requirements-dev.txt)")
    EXPORT["export"]()
    return WEB / "models"


@functools.cache
def _session(path: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def session(graphs: Path, name: str):
    return _session(graphs / EXPORT["GRAPHS"][name])


def _stride_up(n: int, stride: int = 32) -> int:
    return -(-n // stride) * stride


def network_ab(graphs: Path, l_small: np.ndarray) -> np.ndarray:
    """The network graph's ab (h, w, 2) for L (h, w) at the render resolution, as the page calls it."""
    h, w = l_small.shape
    rows, cols = np.zeros(_stride_up(h), np.float32), np.zeros(_stride_up(w), np.float32)
    ab = session(graphs, "network").run(None, {"l": l_small[None, None], "rows": rows, "cols": cols})[0]
    return ab[0].transpose(1, 2, 0)


@pytest.mark.parametrize("photo", PHOTOS, ids=[p.stem for p in PHOTOS])
def test_the_network_graph_gives_the_torch_output(graphs, colorizer_default, photo):
    from colorization import prepare, read_image

    l_small = colorizer_default.l_small(prepare(read_image(photo)).l)
    expected = colorizer_default.predict_ab_from_small(l_small)
    assert np.abs(network_ab(graphs, l_small) - expected).max() <= 1e-3


@pytest.mark.parametrize("shape", [(1, 9), (20, 512), (45, 64), (128, 128)])
def test_the_network_graph_pads_as_the_model_on_any_shape(graphs, colorizer_default, shape):
    l_small = np.random.default_rng(0).uniform(0, 100, shape).astype(np.float32)
    expected = colorizer_default.predict_ab_from_small(l_small)
    assert np.abs(network_ab(graphs, l_small) - expected).max() <= 1e-3


def test_the_lightness_graph_is_rgb_to_l_on_a_grid_of_colours(graphs):
    from colorization.color import rgb_to_l

    grid = np.stack(np.meshgrid(*[np.arange(0, 256, 3, dtype=np.uint8)] * 3, indexing="ij"), -1).reshape(-1, 3)
    rgba = np.concatenate([grid, np.full((len(grid), 1), 255, np.uint8)], axis=1)
    l = session(graphs, "lightness").run(None, {"rgba": rgba})[0]
    assert np.abs(l - rgb_to_l(grid[None])[0]).max() < 1e-4


def test_the_display_graph_is_lab_to_display_on_a_grid_of_colours(graphs):
    """Every L, a, b on a grid reaching past the gamut and the ab clamp, gray and alpha included."""
    from colorization.color import lab_to_display

    ab = np.linspace(-130, 130, 53)
    l, a, b = np.meshgrid(np.linspace(0, 100, 41), ab, ab, indexing="ij")
    lab = np.stack([l, a, b], -1).reshape(-1, 3).astype(np.float32)
    rgba = np.zeros((len(lab), 4), np.uint8)
    rgba[:, 3] = np.arange(len(lab)) % 256
    out = session(graphs, "display").run(None, {"l": lab[:, 0].copy(), "a": lab[:, 1].copy(), "b": lab[:, 2].copy(),
                                                "rgba": rgba})[0]
    diff = np.abs(out[:, :3].astype(int) - lab_to_display(lab[None])[0].astype(int)).max(axis=1)
    assert np.array_equal(out[:, 3], rgba[:, 3])
    # A colour on the gamut's edge may be fitted one bisection step apart (float32 rounding on either side).
    assert (diff > 1).mean() < 1e-4 and (diff > 0).mean() < 2e-3, (diff.max(), (diff > 0).mean())


@pytest.mark.parametrize("shape", [(768, 1024), (300, 451), (1000, 37), (97, 131)])
def test_the_resize_graphs_are_the_pipelines(graphs, colorizer_default, shape):
    from colorization.pipeline import render_shape, upsample_ab

    l = np.random.default_rng(1).uniform(0, 100, shape).astype(np.float32)
    h, w = render_shape(*shape, colorizer_default.render_size)
    name = "area" if h < shape[0] else "linear"  # the pipeline's own choice (Colorizer.l_small)
    sizes = {"rows": np.zeros(h, np.float32), "cols": np.zeros(w, np.float32)}
    small = session(graphs, name).run(None, {"x": l[None], **sizes})[0][0]
    assert np.abs(small - colorizer_default.l_small(l)).max() < 2e-3
    ab = np.random.default_rng(2).uniform(-80, 80, (h, w, 2)).astype(np.float32)
    sizes = {"rows": np.zeros(shape[0], np.float32), "cols": np.zeros(shape[1], np.float32)}
    up = session(graphs, "linear").run(None, {"x": ab.transpose(2, 0, 1).copy(), **sizes})[0].transpose(1, 2, 0)
    # ONNX Runtime computes the sample positions from a float32 scale, OpenCV from a float64 one.
    assert np.abs(up - upsample_ab(ab, shape)).max() < 1e-2


@pytest.fixture(scope="module")
def colorizer_default():
    from colorization import load_colorizer

    return load_colorizer(device="cpu")


# --- the page in the browser


@pytest.fixture(scope="module")
def space(graphs, tmp_path_factory) -> Path:
    """The static Space as release/static_space.py assembles it (ONNX Runtime Web installed from the lock file
    first if web/vendor/ lacks it): what the tests serve, so a file the bundle forgot fails them."""
    if not (WEB / "vendor" / "wasm.json").is_file():
        _needed(shutil.which("npm") is not None, "npm is missing (node and npm build web/vendor)")
    out = tmp_path_factory.mktemp("static-space") / "space"
    STATIC["build"](out)
    return out


def test_the_static_space_fits_a_space(space):
    import re

    files = {p.relative_to(space).as_posix(): p.stat().st_size for p in space.rglob("*") if p.is_file()}
    assert {"index.html", "app.js", "README.md", "models/network.onnx", "vendor/ort.wasm.min.mjs"} <= set(files)
    assert re.match(r"---\n.*?\nsdk: static\n.*?---\n", (space / "README.md").read_text(), re.S)
    assert max(files.values()) < 10 * 1024 * 1024 and sum(files.values()) < 40e6, files
    assert not any(name.startswith("node_modules") for name in files)


@pytest.fixture(scope="module")
def site(space) -> str:
    """The static Space served on a free loopback port."""
    class Handler(SimpleHTTPRequestHandler):
        extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                          ".wasm": "application/wasm", ".onnx": "application/octet-stream"}

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(space), **kwargs)

        def log_message(self, *args):  # quiet: pytest shows a failure's own output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    _needed(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def off_machine() -> list[str]:
    return []


@pytest.fixture
def page(browser, site, off_machine, request):
    """The page with one WebAssembly thread, every request off the machine recorded and refused; a screenshot of
    it as the test left it goes to test-artifacts/."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    only_local(context, off_machine)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site + "?threads=1")
    page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000)
    assert page.evaluate("document.body.dataset.state") == "ready", page.locator("#status").inner_text()
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"web_{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, errors
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def open_photo(page, path: Path, state: str = "done") -> None:
    """Give the page a file and wait until it has shown its result (or its error)."""
    page.evaluate("document.body.dataset.state = 'waiting'")
    page.locator("input[type=file]").set_input_files(str(path))
    page.wait_for_function("(s) => document.body.dataset.state == s || document.body.dataset.state == 'error'",
                           arg=state, timeout=300_000)
    assert page.evaluate("document.body.dataset.state") == state, page.locator("#status").inner_text()


def set_control(page, control: str, value) -> None:
    """Move a range input and wait for the page to redraw."""
    page.evaluate("document.body.dataset.state = 'waiting'")
    page.locator(f"#{control}").fill(str(value))  # fires input and change, as a user's release of the slider
    page.wait_for_function("() => ['done', 'error'].includes(document.body.dataset.state)", timeout=300_000)
    assert page.evaluate("document.body.dataset.state") == "done", page.locator("#status").inner_text()


def canvas_pixels(page, element: str) -> np.ndarray:
    """The canvas's own pixels (its full resolution, not what the screen shows), as uint8 RGB."""
    url = page.evaluate(f"document.getElementById('{element}').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def test_the_page_colorizes_the_examples_as_the_python_pipeline(page, colorizer_default):
    """Each example: the browser's full-resolution result against ``load_colorizer()``'s on the same file, and, as
    the counter-score, the gray photo against the same (a page that showed gray would score that)."""
    from colorization import psnr, read_image

    scores = {}
    for photo in PHOTOS:
        open_photo(page, photo)
        result, gray = canvas_pixels(page, "result"), canvas_pixels(page, "gray")
        expected = np.asarray(colorizer_default(read_image(photo)).convert("RGB"))
        assert result.shape == expected.shape  # the photo's own size
        scores[photo.name] = (psnr(result, expected), psnr(gray, expected))
    report = "\n".join(f"{name}: {ours:.2f} dB (gray {g:.2f} dB)" for name, (ours, g) in scores.items())
    print(report)
    assert all(ours >= MIN_PSNR for ours, _ in scores.values()), report
    colourful = [name for name, (ours, g) in scores.items() if g < 40]  # the photos with colour to find
    assert colourful and all(scores[n][0] > scores[n][1] + 5 for n in colourful), report


def test_the_controls_are_the_pipelines(page, colorizer_default):
    """Render size 256 and intensity 0.5 give the pipeline's result with the same arguments; 0 gives the gray."""
    from colorization import psnr, read_image

    photo = EXAMPLES / "chelsea_bw.jpg"
    open_photo(page, photo)
    set_control(page, "size", 256)
    set_control(page, "intensity", 0.5)
    expected = np.asarray(colorizer_default(read_image(photo), render_size=256, intensity=0.5).convert("RGB"))
    score = psnr(canvas_pixels(page, "result"), expected)
    print(f"render size 256, intensity 0.5: {score:.2f} dB against the pipeline")
    assert score >= MIN_PSNR
    set_control(page, "intensity", 0)
    assert np.abs(canvas_pixels(page, "result").astype(int) - canvas_pixels(page, "gray")).max() <= 1
    download = page.locator("#download")
    assert download.get_attribute("download") == "chelsea_bw_colorized.png" and download.get_attribute("href")


def test_a_file_that_is_not_an_image_gets_a_readable_error(page, tmp_path):
    note = tmp_path / "notes.jpg"
    note.write_text("not a photo at all")
    open_photo(page, note, state="error")
    assert "notes.jpg: not an image" in page.locator("#status").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_error_state.png"))
    open_photo(page, EXAMPLES / "coffee.jpg")  # the page is not stuck after an error


def test_the_render_shape_is_the_pipelines(page):
    """The one piece of arithmetic in the page's script (render_shape, Python's rounding) on a grid of sizes."""
    from colorization.pipeline import render_shape

    sizes = [(h, w, s) for h in (1, 7, 100, 333, 768, 1000, 4001) for w in (1, 5, 171, 512, 1024, 3000)
             for s in (64, 128, 256, 512)]
    shapes = page.evaluate("(sizes) => sizes.map(([h, w, s]) => window.colorization.renderShape(h, w, s))", sizes)
    assert [tuple(s) for s in shapes] == [render_shape(h, w, s) for h, w, s in sizes]


def test_time_per_photo_at_1024x768(page, tmp_path):
    """Seconds from the file to the result shown (decode, L, the gray view, L resized, the network at the default
    render size, ab upsampled, the display conversion) for a 1024 x 768 photo, one WebAssembly thread: the first
    photo after the page loads, then the median of three more."""
    photo = tmp_path / "photo_1024x768.jpg"
    Image.open(EXAMPLES / "astronaut.jpg").convert("L").resize((1024, 768), Image.LANCZOS).save(photo, quality=95)
    runs = []
    for _ in range(4):
        open_photo(page, photo)
        runs.append(page.evaluate("({seconds: +document.body.dataset.seconds, steps: JSON.parse(document.body.dataset.steps), "
                                  "network: +document.body.dataset.networkSeconds})"))
    assert canvas_pixels(page, "result").shape == (768, 1024, 3)
    median = sorted(r["seconds"] for r in runs[1:])[1]
    report = {"photo": "1024x768", "wasm_threads": 1, "first_s": runs[0]["seconds"], "median_s": median, "runs": runs}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "web_timing.json").write_text(json.dumps(report, indent=1))
    print(f"1024 x 768, one WebAssembly thread: first {runs[0]['seconds']:.2f} s, then {median:.2f} s (median of 3); "
          f"steps of the last: {runs[-1]['steps']}, network {runs[-1]['network']:.2f} s")
    assert 0 < median < 120 and all(r["network"] > 0 for r in runs)
