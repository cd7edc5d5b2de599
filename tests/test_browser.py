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
