"""The demo's requests without a server: colorization.service from raw values to files and notes."""

from __future__ import annotations

import asyncio
import math
import pickle
import shutil
import zipfile

import numpy as np
import pytest
from app_server import EXAMPLES
from PIL import Image

from colorization import available_weights, hint_image
from colorization.service import Service
from colorization.serving import NOT_UPLOADED, Limits, RequestError, where_to_click

GRAY, COLOUR = EXAMPLES / "camera_bw.jpg", EXAMPLES / "coffee.jpg"


@pytest.fixture(scope="module")
def ran():
    """The work each request handed to the host, as (work's name, estimated seconds, pickled size of its arguments)."""
    return []


@pytest.fixture(scope="module")
def service(tmp_path_factory, ran):
    def gpu(work, seconds):  # as ZeroGPU runs it: the arguments are pickled to a worker, the duration asked first
        def run(*args):
            ran.append((work.__name__, seconds(*args), len(pickle.dumps([a for a in args if not callable(a)]))))
            return work(*args)
        return run
    return Service(Limits(), available_weights(), str(tmp_path_factory.mktemp("root")), gpu=gpu)


def upload(service: Service, path, name: str | None = None) -> dict:
    """A file as the page's server stores an upload: copied inside the root, sent with its own name."""
    stored = shutil.copy(path, f"{service.root}/{name or path.name}")
    return {"path": stored, "orig_name": path.name}


LOOP = asyncio.new_event_loop()  # one loop for the module's service, as a server has (a Lane serves one event loop)


def run(coroutine):
    return LOOP.run_until_complete(coroutine)


def test_a_gray_photo_is_colorized_at_full_resolution_through_the_hosts_work(service, ran):
    (gray, shown), png, note = run(service.colorize("s", upload(service, GRAY), service.default_model, 128, 1.0, None,
                                                    "object", None))
    assert png == shown and Image.open(png).size == Image.open(gray).size == Image.open(GRAY).size
    assert png.endswith("camera_bw_colorized.png") and note.startswith("Colorized with **")
    name, seconds, pickled = ran[-1]
    assert name == "_colorize_work" and 0 < seconds < 10 and pickled < 2000  # paths and settings, not pixels


def test_a_colour_photo_with_painted_colours_is_scored_beside_gray(service, tmp_path):
    size = Image.open(COLOUR).size
    hint_image([(size[0] / 2, size[1] / 2, "#2ca02c", 20)], size).save(tmp_path / "layer.png")
    hints = {"background": None, "layers": [upload(service, tmp_path / "layer.png")], "composite": None}
    _, _, note = run(service.colorize("s", upload(service, COLOUR), service.default_model, 128, 1.0, hints, "object",
                                      None))
    assert "already in colour" in note and "Gray baseline" in note and "of the photo painted" in note


@pytest.mark.parametrize("change, message", [
    ({"image": {"path": str(COLOUR)}}, NOT_UPLOADED),
    ({"image": None}, "Upload a photo first"),
    ({"model": "vgg.safetensors"}, "Unknown model"),
    ({"size": 200}, "multiple of 32"),
    ({"intensity": float("nan")}, "Colour intensity must be between"),
    ({"hints": "str"}, "Hints must be an image editor value"),
    ({"reach": "everywhere"}, "Unknown reach"),
    ({"reference": {"path": "/etc/passwd"}}, NOT_UPLOADED),
])
def test_every_value_is_checked_before_any_work(service, ran, change, message):
    before = len(ran)
    values = {"image": upload(service, GRAY), "model": service.default_model, "size": 128, "intensity": 1.0,
              "hints": None, "reach": "object", "reference": None, **change}
    with pytest.raises(RequestError, match=message):
        run(service.colorize("s", *values.values()))
    assert len(ran) == before


def test_the_live_preview_follows_stored_layers_at_screen_size(service, tmp_path):
    photo = upload(service, COLOUR)
    assert run(service.live("s", None, [], service.default_model, 128, 1.0, "object", None)) is None
    size = Image.open(COLOUR).size
    hint_image([(size[0] / 2, size[1] / 2, "#2ca02c", 20)], size).save(tmp_path / "layer.png")
    layers = service.store_layers([(tmp_path / "layer.png").read_bytes()])
    gray, shown = run(service.live("s", photo, layers, service.default_model, 128, 1.0, "object", None))
    assert Image.open(shown).size == Image.open(gray).size and max(Image.open(shown).size) <= 1024


def test_compare_shows_every_model_or_the_render_sizes_with_scores_for_a_colour_photo(service):
    images, note = run(service.compare("s", upload(service, COLOUR), "every model", service.default_model, 1.0))
    assert len(images) == len(service.weights) + 2  # gray, each model, the original
    assert "Gray baseline" in note and "Your original" in note
    images, _ = run(service.compare("s", upload(service, GRAY), "render sizes", service.default_model, 1.0))
    assert [caption for _, caption in images] == ["Gray"] + [f"render size {s}" for s in service.compared_sizes]


def test_many_photos_come_back_as_one_zip_and_a_broken_one_is_named(service, tmp_path):
    (tmp_path / "notes.png").write_bytes(b"not a photo")
    files = [upload(service, GRAY), upload(service, EXAMPLES / "chelsea_bw.jpg"), upload(service, tmp_path / "notes.png")]
    reported = []
    path, note = run(service.colorize_many("s", files, service.default_model, 128, 1.0,
                                           lambda done, **_: reported.append(done)))
    assert sorted(zipfile.ZipFile(path).namelist()) == ["camera_bw_colorized.png", "chelsea_bw_colorized.png"]
    assert note.startswith("2 photos colorized") and "1 could not be" in note and "notes.png" in note
    assert reported[-1] == (3, 3)


def test_suggestions_need_a_point_of_two_numbers(service):
    if service.suggester is None:
        pytest.skip("no classification model shipped")
    photo = upload(service, GRAY)
    colours = run(service.suggest("s", photo, [10, 20], 128))
    assert colours and all(colour.startswith("#") and 0 < share <= 1 for colour, share in colours)
    with pytest.raises(RequestError, match="two whole numbers"):
        run(service.suggest("s", photo, "here", 128))


def test_where_to_click_numbers_five_spread_spots_on_the_gray_photo_at_its_size(service):
    if service.suggester is None:
        pytest.skip("no classification model shipped")
    photo = upload(service, COLOUR)
    shown, note = run(service.where_to_click("s", photo))
    assert Image.open(shown).size == Image.open(COLOUR).size and "5 numbered spots" in note
    _, points = where_to_click(service.colorizer(service.suggester), photo["path"], service.root)
    width, height = Image.open(COLOUR).size
    assert len(set(points)) == 5 and all(0 <= x < width and 0 <= y < height for x, y in points)
    assert min(math.dist(p, q) for p in points for q in points if p != q) >= min(width, height) / 16
    pixels = np.asarray(Image.open(shown).convert("RGB")).astype(int)
    inside = max(6, min(width, height) // 40) * 3 // 4  # within each white disc, left of its number
    assert all(pixels[y, x - inside].min() > 200 for x, y in points)


def test_no_weights_is_one_clear_message(tmp_path):
    with pytest.raises(ValueError, match="No weights"):
        Service(Limits(), [], str(tmp_path))
