"""The demo through a real server: ``python app.py`` on loopback, driven by ``gradio_client``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_server import EXAMPLES, running_app

GRAY = EXAMPLES / "camera_bw.jpg"
COLOUR = EXAMPLES / "coffee.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    temp_dir = tmp_path_factory.mktemp("gradio-server")
    with running_app(temp_dir) as url:
        yield url, temp_dir


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return Client(server[0], verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("downloads")))


def colorize(client: Client, path: Path, **settings):
    """(gray, colorized, download) as PIL images, and the note."""
    (gray, shown), download, note = client.predict(handle_file(str(path)), api_name="/colorize", **settings)
    return Image.open(gray), Image.open(shown), Image.open(download), note


def test_api_defaults_let_image_alone_work(client):
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/colorize"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["image", "model", "render_size", "intensity"]
    assert all(p["parameter_has_default"] for p in params[1:])


def test_gray_photo(client):
    gray, shown, download, note = colorize(client, GRAY)
    size = Image.open(GRAY).size
    assert download.format == "PNG" and download.mode == "RGB"
    assert gray.size == shown.size == download.size == size
    assert "Colorized with" in note and "PSNR" not in note


def test_colour_photo_shows_metrics(client):
    _, _, download, note = colorize(client, COLOUR)
    assert download.size == Image.open(COLOUR).size
    assert "already in colour" in note
    for row in ("PSNR", "SSIM", "Colourfulness", "Gray baseline", "Your original"):
        assert row in note


def test_settings_reach_the_pipeline(client):
    _, _, download, _ = colorize(client, COLOUR, render_size=128, intensity=0.0)
    rgb = np.asarray(download).astype(int)
    assert np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max() <= 2, "intensity 0 must give a gray photo"


@pytest.mark.parametrize("model", ["gan.safetensors", "classification.safetensors", "fusion.safetensors"])
def test_every_shipped_model_is_offered_and_colorizes(client, model):
    if not (Path(__file__).resolve().parents[1] / "weights" / model).exists():
        pytest.skip(f"weights/{model} is not shipped")
    _, shown, _, note = colorize(client, COLOUR, model=model, render_size=128)
    assert shown.size == Image.open(COLOUR).size
    rgb = np.asarray(shown.convert("RGB")).astype(int)
    assert np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean() > 2, "a trained model gives colour"
    assert "already in colour" in note


def _rgba(path: Path) -> Path:
    rgb = Image.open(EXAMPLES / "chelsea.jpg")
    alpha = Image.linear_gradient("L").resize(rgb.size)
    rgb.putalpha(alpha)
    rgb.save(path)
    return path


def _sixteen_bit(path: Path) -> Path:
    gray = np.asarray(Image.open(GRAY))[:300, :450].astype(np.uint16) * 257
    Image.fromarray(gray).save(path)  # mode I;16
    assert Image.open(path).mode.startswith("I")
    return path


def _cmyk(path: Path) -> Path:
    Image.open(COLOUR).convert("CMYK").save(path)
    return path


def _palette(path: Path) -> Path:
    Image.open(EXAMPLES / "chelsea.jpg").convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    return path


def _exif_rotated(path: Path) -> Path:
    image = Image.open(EXAMPLES / "rocket.jpg")  # 640x427 stored; orientation 6 shows it 427x640
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif)
    return path


@pytest.mark.parametrize("make, name, size, mode", [
    (_rgba, "rgba.png", (451, 300), "RGBA"),
    (_sixteen_bit, "sixteen.png", (450, 300), "RGB"),
    (_cmyk, "cmyk.jpg", (600, 400), "RGB"),
    (_palette, "palette.png", (451, 300), "RGB"),
    (_exif_rotated, "rotated.jpg", (427, 640), "RGB"),
])
def test_image_modes(client, tmp_path, make, name, size, mode):
    _, shown, download, _ = colorize(client, make(tmp_path / name))
    assert download.size == shown.size == size
    assert download.mode == mode
    if mode == "RGBA":  # alpha passes through untouched
        expected = np.asarray(Image.open(tmp_path / name))[..., 3].astype(int)
        assert np.abs(np.asarray(download)[..., 3].astype(int) - expected).max() <= 1


def _not_an_image(path: Path) -> Path:
    path.write_bytes(b"this is a text file, not a photo\n" * 10)
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _truncated(path: Path) -> Path:
    data = COLOUR.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _too_large(path: Path) -> Path:
    Image.new("L", (7000, 6000)).save(path)  # 42 MP, over the app's 40 MP limit; compresses to a few kB
    return path


@pytest.mark.parametrize("make, name, settings, message", [
    (_not_an_image, "notes.png", {}, "not an image"),
    (_empty, "empty.jpg", {}, "not an image"),
    (_truncated, "half.jpg", {}, "corrupt or truncated"),
    (_too_large, "huge.png", {}, "over the limit of 40"),
    (None, "ok.jpg", {"render_size": 200}, "multiple of 32"),
    (None, "ok.jpg", {"render_size": 4096}, "between 128 and 512"),
    (None, "ok.jpg", {"model": "missing.safetensors"}, "Unknown model"),
])
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(client, server, tmp_path, make, name,
                                                                   settings, message):
    path = make(tmp_path / name) if make else GRAY
    with pytest.raises(Exception, match=message) as info:
        client.predict(handle_file(str(path)), api_name="/colorize", **settings)
    assert type(info.value).__name__ == "AppError"  # a gr.Error, not a crash
    assert str(server[1]) not in str(info.value)  # the message names the upload, not a server path
    _, _, download, _ = colorize(client, GRAY)
    assert download.size == Image.open(GRAY).size


def test_each_request_writes_its_own_file_in_gradio_temp_dir(client, server):
    temp_dir = server[1]
    before = set(temp_dir.rglob("chelsea_bw_colorized.png"))
    for _ in range(2):
        colorize(client, EXAMPLES / "chelsea_bw.jpg")
    written = set(temp_dir.rglob("chelsea_bw_colorized.png")) - before
    assert len({p.parent for p in written}) >= 2
