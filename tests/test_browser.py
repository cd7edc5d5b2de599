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

    def only_local(route):  # one off the machine is recorded and refused
        if is_local(route.request.url):
            route.continue_()
        else:
            off_machine.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("request", lambda r: is_local(r.url) or off_machine.append(r.url))  # belt and braces
    page.goto(app_url, wait_until="networkidle")
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def test_upload_colorize_and_slider(page, off_machine, tmp_path):
    photo = tmp_path / "browser_upload.png"  # a name no example has, so its preview is easy to find
    Image.open(EXAMPLES / "rocket.jpg").convert("L").save(photo)
    page.locator("input[type=file]").first.set_input_files(str(photo))
    page.locator(".image-frame img[src*='browser_upload']").wait_for(timeout=30_000)  # uploaded and shown
    page.get_by_role("button", name="Colorize").click()

    page.wait_for_function(
        """() => { const imgs = [...document.querySelectorAll("img[data-testid='imageslider-image']")];
                   return imgs.length == 2 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        timeout=90_000,
    )
    slider = page.locator("img[data-testid='imageslider-image']")
    sources = [slider.nth(i).get_attribute("src") for i in range(2)]
    assert sources[0] != sources[1]
    assert sources[1].endswith("browser_upload_colorized.png")
    sizes = [slider.nth(i).evaluate("i => [i.naturalWidth, i.naturalHeight]") for i in range(2)]
    assert sizes == [list(Image.open(photo).size)] * 2  # both at the photo's own resolution
    page.locator("a[href$='browser_upload_colorized.png']").first.wait_for(state="attached")  # the download link
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def test_examples_are_clickable(page, off_machine):
    page.locator("img[src*='astronaut']").first.click()
    page.locator(".image-frame img[src*='astronaut']").wait_for(timeout=30_000)
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def _shown_result(page, previous: str | None = None) -> tuple[str, Image.Image]:
    """The slider's colorized image once it differs from ``previous`` (its src), fetched from the server."""
    import io

    page.wait_for_function(
        """(previous) => { const imgs = [...document.querySelectorAll("img[data-testid='imageslider-image']")];
                           return imgs.length == 2 && imgs.every(i => i.complete && i.naturalWidth > 0)
                                  && imgs[1].src != previous; }""",
        arg=previous, timeout=90_000,
    )
    src = page.locator("img[data-testid='imageslider-image']").nth(1).get_attribute("src")
    return src, Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")


def test_a_painted_stroke_recolours_its_region(page, off_machine, tmp_path):
    import numpy as np

    from colorization import rgb_to_lab

    photo = tmp_path / "browser_hints.png"
    Image.open(EXAMPLES / "coffee.jpg").convert("L").save(photo)
    page.locator("input[type=file]").first.set_input_files(str(photo))
    page.get_by_role("button", name="Colorize").click()
    src, plain = _shown_result(page)

    editor = page.locator("#hints")
    editor.locator("canvas").last.wait_for()
    editor.get_by_role("button", name="Color", exact=True).click()
    editor.locator("button[style*='rgb(44, 160, 44)']").click()  # the palette's green, #2ca02c
    editor.get_by_role("button", name="Brush", exact=True).click()  # closes the palette
    box = editor.locator("canvas").last.bounding_box()
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.down()
    for t in np.linspace(0.4, 0.6, 15):  # a horizontal stroke through the middle, 20 % of the width
        page.mouse.move(box["x"] + box["width"] * t, y, steps=3)
    page.mouse.up()
    page.get_by_role("button", name="Colorize").click()
    _, hinted = _shown_result(page, src)

    w, h = plain.size
    def green(image):  # Lab a (negative = green) along the stroke
        region = np.asarray(image)[h // 2 - 3 : h // 2 + 4, int(w * 0.45) : int(w * 0.55)]
        return float(rgb_to_lab(region.astype(np.float32) / 255)[..., 1].mean())
    assert green(hinted) < green(plain) - 15, (green(plain), green(hinted))
    assert not off_machine, f"requests off the machine: {sorted(set(off_machine))}"


def test_a_click_offers_suggested_colours_on_the_brush(page, off_machine):
    if not (REPO / "weights" / "classification.safetensors").exists():
        pytest.skip("the suggestions need weights/classification.safetensors")
    page.locator("img[src*='coffee']").first.click()  # an example
    image = page.locator("img[src*='gray.png']").last
    image.wait_for(timeout=30_000)
    image.click(position={"x": 150, "y": 120})
    page.get_by_text("Likely colours at").wait_for(timeout=60_000)
    swatches = page.locator("#hints").get_by_role("button", name="Color", exact=True)
    swatches.click()
    palette = page.locator("#hints button[style*='background-color']")
    assert palette.count() > 9  # the six suggestions joined the nine fixed colours
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
    tab.get_by_text("holiday.zip").first.wait_for(timeout=30_000)  # both uploaded and listed
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
    page.locator(".image-frame img[src*='coffee']").wait_for(timeout=30_000)
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
