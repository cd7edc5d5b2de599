"""The demo in a real headless Chromium (Debian's package) driven by Playwright for Python."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from app_server import EXAMPLES, REPO, running_app

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium phones home, which a closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
ARTIFACTS = REPO / "test-artifacts"


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS


def only_local(context, off_machine: list[str]) -> None:
    """Route every request of a browser ``context``: a local one goes through, one off the machine is recorded in
    ``off_machine`` and refused."""
    def route(request_route):
        if is_local(request_route.request.url):
            request_route.continue_()
        else:
            off_machine.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        # CI installs Chromium, so there a missing browser is a failure, not a skip.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app_url(browser, tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("gradio-browser")) as url:
        yield url


@pytest.fixture
def off_machine() -> list[str]:
    """URLs the page asked for that are not on this machine (the tests expect none)."""
    return []


@pytest.fixture
def page(browser, app_url, off_machine, request):
    """A fresh page on the app whose every request is intercepted; any off the machine lands in ``off_machine``.

    A screenshot of the page as the test left it is saved in test-artifacts/.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    only_local(context, off_machine)
    page = context.new_page()
    page.on("request", lambda r: is_local(r.url) or off_machine.append(r.url))  # belt and braces
    page.goto(app_url, wait_until="networkidle")
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def _shown(page, previous: str | None = None, suffix: str = "") -> tuple[str, Image.Image]:
    """The slider's colorized image once it differs from ``previous`` (its src) and its src ends with ``suffix``,
    fetched from the server."""
    import io

    page.wait_for_function(
        """([previous, suffix]) => {
               const imgs = [...document.querySelectorAll("img[data-testid='imageslider-image']")];
               return imgs.length == 2 && imgs.every(i => i.complete && i.naturalWidth > 0)
                      && imgs[1].src != previous && imgs[1].src.endsWith(suffix); }""",
        arg=[previous, suffix], timeout=90_000,
    )
    src = page.locator("img[data-testid='imageslider-image']").nth(1).get_attribute("src")
    return src, Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")


def _upload(page, photo: Path) -> None:
    """Put ``photo`` on the canvas, as a user dropping it there."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Upload a photo").click()
    chooser.value.set_files(str(photo))


def test_upload_shows_the_colours_at_once_and_colorize_gives_the_full_resolution_png(page, off_machine, tmp_path):
    photo = tmp_path / "browser_upload.png"  # a name no example has
    Image.open(EXAMPLES / "rocket.jpg").convert("L").save(photo)
    _upload(page, photo)
    src, preview = _shown(page, suffix="colorized.jpg")  # the live preview, without a button
    assert preview.size == Image.open(photo).size  # rocket.jpg is under the preview's 1024 px
    page.get_by_role("button", name="Colorize", exact=True).click()
    _, result = _shown(page, src, suffix="_colorized.png")
    slider = page.locator("img[data-testid='imageslider-image']")
    sizes = [slider.nth(i).evaluate("i => [i.naturalWidth, i.naturalHeight]") for i in range(2)]
    assert sizes == [list(Image.open(photo).size)] * 2  # both at the photo's own resolution
    page.locator("a[href$='_colorized.png']").first.wait_for(state="attached")  # the download link
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def test_an_example_goes_on_the_canvas_and_is_colorized_at_once(page, off_machine):
    page.locator("img[src*='astronaut']").first.click()
    _, preview = _shown(page, suffix="colorized.jpg")
    assert max(preview.size) == min(1024, max(Image.open(EXAMPLES / "astronaut.jpg").size))
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def _paint(page, colour: str, points: list[tuple[float, float]], brush: int | None = None) -> None:
    """One stroke through ``points`` (fractions of the canvas) in the palette's ``colour`` (CSS rgb(...))."""
    canvas = page.locator("#canvas")
    canvas.get_by_role("button", name="Color", exact=True).click()
    canvas.locator(f"button[style*='{colour}']").click()
    canvas.get_by_role("button", name="Brush", exact=True).click()  # closes the palette
    box = canvas.locator("canvas").last.bounding_box()
    page.mouse.move(box["x"] + box["width"] * points[0][0], box["y"] + box["height"] * points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=3)
    page.mouse.up()


def test_a_painted_stroke_recolours_its_object_live_and_leaves_its_surroundings(page, off_machine, tmp_path):
    import numpy as np

    from colorization import rgb_to_lab

    photo = tmp_path / "browser_hints.png"
    Image.open(EXAMPLES / "coffee.jpg").convert("L").save(photo)
    _upload(page, photo)
    src, plain = _shown(page, suffix="colorized.jpg")
    page.locator("#canvas canvas").last.wait_for()
    # A short stroke on the coffee (the dark disc in the cup, about 40-60 % across, 35-50 % down), no button.
    _paint(page, "rgb(44, 160, 44)", [(0.45, 0.42), (0.5, 0.42), (0.55, 0.42)])  # the palette's green, #2ca02c
    _, hinted = _shown(page, src, suffix="colorized.jpg")

    lab = [rgb_to_lab(np.asarray(image, np.float32) / 255) for image in (plain, hinted)]
    h, w = plain.size[1], plain.size[0]
    stroke = (slice(int(h * 0.40), int(h * 0.44)), slice(int(w * 0.46), int(w * 0.54)))
    assert lab[1][stroke][..., 1].mean() < lab[0][stroke][..., 1].mean() - 15  # greener along the stroke
    # The table in the corners, far from the cup and of another colour, keeps the colour it had before the stroke.
    moved = np.linalg.norm(lab[1][..., 1:] - lab[0][..., 1:], axis=-1)
    corners = [moved[: h // 8, : w // 8], moved[: h // 8, -w // 8 :], moved[-h // 8 :, : w // 8],
               moved[-h // 8 :, -w // 8 :]]
    assert max(float(np.median(c)) for c in corners) <= 5.0, [float(np.median(c)) for c in corners]
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def test_asking_what_colour_a_spot_was_puts_likely_colours_on_the_brush_and_keeps_the_strokes(page, off_machine,
                                                                                               tmp_path):
    import numpy as np

    from colorization import rgb_to_lab

    if not (REPO / "weights" / "classification.safetensors").exists():
        pytest.skip("the suggestions need weights/classification.safetensors")
    photo = tmp_path / "browser_ask.png"
    Image.open(EXAMPLES / "coffee.jpg").convert("L").save(photo)
    _upload(page, photo)
    src, _ = _shown(page, suffix="colorized.jpg")
    canvas = page.locator("#canvas")
    canvas.locator("canvas").last.wait_for()
    _paint(page, "rgb(44, 160, 44)", [(0.45, 0.42), (0.5, 0.42), (0.55, 0.42)])  # green on the coffee
    src, _ = _shown(page, src, suffix="colorized.jpg")
    box = canvas.bounding_box()
    ask = page.locator("#mode").get_by_text("Ask what colour a spot was")
    picker = page.locator("#picker img")
    for round_ in range(2):
        # Asking lays the same photo, clickable, over the canvas; a click puts the likely colours on the brush and
        # brings the canvas back. The second time, where to click first: its map, and a click on it still asks.
        ask.click()
        picker.wait_for(state="visible", timeout=10_000)
        assert page.evaluate("document.getElementById('paint-or-ask').classList.contains('asking')")
        if round_ == 1:
            page.get_by_role("button", name="Where would a colour help most?").click()
            page.locator("#picker img[src*='where_to_click']").wait_for(timeout=60_000)
            page.get_by_text("numbered spots are where a colour would help most").wait_for()
            page.screenshot(path=str(ARTIFACTS / "asking_where_to_click.png"), full_page=True)
        shown = picker.bounding_box()  # over the canvas, not beside it
        assert abs(shown["x"] + shown["width"] / 2 - (box["x"] + box["width"] / 2)) < box["width"] / 4, (shown, box)
        before = page.locator("#suggestions").inner_text()
        # The table, left of the saucer (a point of its own each round, so each answer names another point).
        picker.click(position={"x": shown["width"] * 0.12, "y": shown["height"] * (0.8 - 0.05 * round_)})
        page.wait_for_function("b => document.getElementById('suggestions').innerText.includes('Likely colours at') "
                               "&& document.getElementById('suggestions').innerText != b", arg=before, timeout=60_000)
        picker.wait_for(state="hidden", timeout=30_000)
        assert page.locator("#mode input[value='paint']").is_checked()
        assert canvas.bounding_box() == box  # the canvas never moved: strokes land where they are painted
        canvas.get_by_role("button", name="Color", exact=True).click()
        page.wait_for_function("document.querySelectorAll(\"#canvas button[style*='background-color']\").length > 9",
                               timeout=30_000)  # the six suggestions joined the nine fixed colours
        canvas.get_by_role("button", name="Brush", exact=True).click()
    # The green stroke painted before asking is still there: a second stroke's preview has both.
    _paint(page, "rgb(255, 127, 14)", [(0.22, 0.8), (0.27, 0.8)])  # the palette's orange, on the table
    _, both = _shown(page, src, suffix="colorized.jpg")
    lab = rgb_to_lab(np.asarray(both, np.float32) / 255)
    h, w = lab.shape[:2]
    assert lab[int(h * 0.40):int(h * 0.44), int(w * 0.46):int(w * 0.54), 1].mean() < -10  # still green
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def test_many_photos_tab_returns_one_zip_of_full_resolution_pngs(page, off_machine, tmp_path):
    import zipfile

    archive = tmp_path / "holiday.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("coffee.jpg", "astronaut.jpg"):
            zf.write(EXAMPLES / name, f"holiday/{name}")
    page.get_by_role("tab", name="Many photos").click()
    tab = page.locator("[role=tabpanel]:visible")
    tab.locator("input[type=file]").set_input_files([str(EXAMPLES / "camera_bw.jpg"), str(archive)])
    # Both uploaded and listed (Gradio shows a file's stem and its extension in elements of their own)
    tab.get_by_text("holiday", exact=True).first.wait_for(timeout=30_000)
    tab.get_by_role("button", name="Colorize all").click()
    link = tab.locator("a[href$='colorized.zip']").first
    link.wait_for(state="attached", timeout=120_000)
    note = tab.get_by_text("3 photos colorized").first
    note.wait_for()
    with page.expect_download() as download:
        link.click()
    path = tmp_path / "result.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["camera_bw_colorized.png", "holiday/coffee_colorized.png",
                                 "holiday/astronaut_colorized.png"]
        coffee = Image.open(zf.open("holiday/coffee_colorized.png"))
        assert coffee.size == Image.open(EXAMPLES / "coffee.jpg").size
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def test_compare_shows_every_model_side_by_side(page, off_machine):
    page.locator("img[src*='coffee']").first.click()  # an example
    _shown(page, suffix="colorized.jpg")
    page.get_by_role("button", name="Compare", exact=True).click()
    gallery = page.locator("#compare")
    models = len(list(REPO.glob("weights/*.safetensors")))
    page.wait_for_function(
        f"""() => {{ const imgs = [...document.querySelectorAll("#compare img")];
                    return imgs.length >= {models + 2} && imgs.every(i => i.complete && i.naturalWidth > 0); }}""",
        timeout=120_000,
    )
    text = gallery.inner_text()
    assert "Gray: " in text and "Original: colourfulness" in text and text.count(" dB, colourfulness ") == models + 1
    gallery.scroll_into_view_if_needed()
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def test_a_reference_photo_recolours_the_preview_and_shows_where_its_colours_came_from(page, off_machine, tmp_path):
    reference = tmp_path / "reference.jpg"
    Image.open(EXAMPLES / "coffee.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((480, 320)).save(reference)
    photo = tmp_path / "gray_coffee.png"
    Image.open(EXAMPLES / "coffee.jpg").convert("L").save(photo)
    _upload(page, photo)
    src, _ = _shown(page, suffix="colorized.jpg")
    page.get_by_text("Colour like a reference photo").click()
    page.locator("#reference input[type=file]").set_input_files(str(reference))
    _shown(page, src, suffix="colorized.jpg")  # the preview follows the reference
    page.get_by_role("button", name="Show what was taken from where").click()
    page.wait_for_function("""() => { const imgs = [...document.querySelectorAll("#matches img")];
                                      return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
                           timeout=60_000)
    page.get_by_text("of the photo's cells matched the reference confidently").wait_for()
    page.locator("#matches").scroll_into_view_if_needed()
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"
