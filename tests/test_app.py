"""The demo through a real server: ``python app.py`` on loopback, driven by ``gradio_client``."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_server import EXAMPLES, REPO, running_app

from colorization import rgb_to_lab

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
    assert [p["parameter_name"] for p in params] == ["image", "model", "render_size", "intensity", "hints", "reach",
                                                         "reference"]
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


@pytest.mark.parametrize("model", ["gan.safetensors", "classification.safetensors", "unet.safetensors"])
def test_every_shipped_model_is_offered_and_colorizes(client, model):
    if not (REPO / "weights" / model).exists():
        pytest.skip(f"weights/{model} is not shipped")
    _, shown, _, note = colorize(client, COLOUR, model=model, render_size=128)
    assert shown.size == Image.open(COLOUR).size
    rgb = np.asarray(shown.convert("RGB")).astype(int)
    assert np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean() > 2, "a trained model gives colour"
    assert "already in colour" in note


def _hints(layers: list[Path]) -> dict:
    return {"background": None, "layers": [handle_file(str(p)) for p in layers], "composite": None}


def _green_disc(path: Path, size: tuple[int, int], scale: float = 1.0) -> Path:
    from colorization import hint_image

    w, h = size
    hint_image([(w // 2 * scale, h // 2 * scale, "#00c000", 20 * scale)], (round(w * scale), round(h * scale))).save(path)
    return path


def _centre_a(image: Image.Image) -> float:
    """Mean Lab a (green is negative) of the 11 x 11 centre of an image."""
    from colorization import rgb_to_lab

    w, h = image.size
    rgb = np.asarray(image.convert("RGB"))[h // 2 - 5 : h // 2 + 6, w // 2 - 5 : w // 2 + 6]
    return float(rgb_to_lab(rgb.astype(np.float32) / 255)[..., 1].mean())


def test_painted_colours_recolour_their_region_through_the_api(client, tmp_path):
    size = Image.open(COLOUR).size
    _, plain, _, _ = colorize(client, COLOUR)
    _, hinted, download, note = colorize(client, COLOUR, hints=_hints([_green_disc(tmp_path / "h.png", size)]))
    assert _centre_a(hinted) < _centre_a(plain) - 20, (_centre_a(plain), _centre_a(hinted))
    assert download.size == size and "your colours" in note and "PSNR" in note
    # a canvas of another size (the editor's) is scaled to the photo; two layers both count
    _, scaled, _, _ = colorize(client, COLOUR, hints=_hints([_green_disc(tmp_path / "half.png", size, 0.5)]))
    assert _centre_a(scaled) < _centre_a(plain) - 20
    empty = tmp_path / "empty.png"
    Image.new("RGBA", size, (0, 0, 0, 0)).save(empty)
    _, untouched, _, note = colorize(client, COLOUR, hints=_hints([empty]))
    assert np.array_equal(np.asarray(untouched), np.asarray(plain)) and "your colours" not in note
    # reach="photo": the same disc casts its colour over the whole photo (issue 24 item 3); an unknown reach is named
    green = _hints([_green_disc(tmp_path / "h.png", size)])
    _, cast, _, _ = colorize(client, COLOUR, hints=green, reach="photo")
    a = [rgb_to_lab(np.asarray(image, np.float32) / 255)[..., 1] for image in (plain, hinted, cast)]
    assert (a[2] < a[0] - 5).mean() > 2 * (a[1] < a[0] - 5).mean(), [(x < a[0] - 5).mean() for x in a[1:]]
    with pytest.raises(Exception, match="Unknown reach 'room'"):
        colorize(client, COLOUR, hints=green, reach="room")


def test_hints_without_transparency_or_with_too_many_layers_get_a_clear_error(client, tmp_path):
    opaque = tmp_path / "opaque.jpg"
    Image.new("RGB", Image.open(COLOUR).size, (0, 200, 0)).save(opaque)
    empty = tmp_path / "empty.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(empty)
    for hints, message in ((_hints([opaque]), "hints need transparency"), (_hints([empty] * 9), "at most 8 layers")):
        with pytest.raises(Exception, match=message) as info:
            colorize(client, COLOUR, hints=hints)
        assert type(info.value).__name__ == "AppError"


def test_a_hint_layer_that_is_not_an_image_is_named_without_its_server_path(client, server, tmp_path):
    broken = tmp_path / "strokes.png"
    broken.write_text("not an image")
    with pytest.raises(Exception, match="hint layer 1: not an image") as info:
        colorize(client, COLOUR, hints=_hints([broken]))
    assert type(info.value).__name__ == "AppError" and str(server[1]) not in str(info.value)


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
    Image.new("L", (4000, 2500)).save(path)  # 10 MP, over the app's 8 MP limit; compresses to a few kB
    return path


def _strip(path: Path) -> Path:
    Image.new("L", (10_000, 1), 128).save(path)  # 1 x 10,000: a 13 KB file that once killed the server
    return path


@pytest.mark.parametrize("make, name, settings, message", [
    (_not_an_image, "notes.png", {}, "not an image"),
    (_empty, "empty.jpg", {}, "not an image"),
    (_truncated, "half.jpg", {}, "corrupt or truncated"),
    (_too_large, "huge.png", {}, "over the limit of 8"),
    (None, "ok.jpg", {"render_size": 200}, "multiple of 32"),
    (None, "ok.jpg", {"render_size": 4096}, "between 128 and 512"),
    (None, "ok.jpg", {"render_size": None}, "Render size must be a number"),
    (None, "ok.jpg", {"render_size": "big"}, "Render size must be a number"),
    (None, "ok.jpg", {"intensity": "nan"}, "Colour intensity must be between 0 and 2"),
    (None, "ok.jpg", {"intensity": -1}, "Colour intensity must be between 0 and 2"),
    (None, "ok.jpg", {"intensity": 1e9}, "Colour intensity must be between 0 and 2"),
    (None, "ok.jpg", {"intensity": None}, "Colour intensity must be a number"),
    (None, "ok.jpg", {"intensity": True}, "Colour intensity must be a number"),
    (None, "ok.jpg", {"model": "missing.safetensors"}, "Unknown model"),
    (None, "ok.jpg", {"model": ["cnn.safetensors"]}, "Unknown model"),
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


def test_a_one_pixel_high_strip_is_colorized_and_the_server_keeps_serving(client, tmp_path):
    gray, shown, download, note = colorize(client, _strip(tmp_path / "strip.png"))
    assert download.size == shown.size == gray.size == (10_000, 1)
    assert "Colorized with" in note


def _call_raw(url: str, file: Path, orig_name: str) -> list:
    """Upload and call /colorize over Gradio's HTTP API, sending ``orig_name`` as a browser could
    (gradio_client replaces it with the local file's name)."""
    with httpx.Client(base_url=url, timeout=120) as http:
        server_path = http.post("/gradio_api/upload", files={"files": (file.name, file.read_bytes())}).json()[0]
        payload = {"path": server_path, "orig_name": orig_name, "meta": {"_type": "gradio.FileData"}}
        data = [payload, "cnn.safetensors", 256, 1.0, None, "object", None]
        event = http.post("/gradio_api/call/colorize", json={"data": data}).json()["event_id"]
        stream = http.get(f"/gradio_api/call/colorize/{event}").text
    kind = re.findall(r"^event: (\w+)", stream, re.M)[-1]
    data = json.loads(re.findall(r"^data: (.*)$", stream, re.M)[-1])
    assert kind == "complete", stream[-500:]
    return data


@pytest.mark.parametrize("name, expected", [("x" * 300 + ".png", "x" * 64), ("bad\x00name.png", "badname"),
                                            ("../../etc/passwd.png", "passwd"), ("..png", "photo"),
                                            ("photo d'été.jpg", "photo_d_été")])
def test_any_upload_name_gives_a_safe_output_name(server, name, expected):
    (gray, shown), download, note = _call_raw(server[0], GRAY, name)
    assert Path(download["path"]).name == f"{expected}_colorized.png"
    assert Path(download["path"]).is_relative_to(server[1])
    assert Image.open(download["path"]).size == Image.open(GRAY).size


REFUSED = "That file was not uploaded to this app; upload it again."  # serving.NOT_UPLOADED
META = {"_type": "gradio.FileData"}


def _upload(url: str, file: Path) -> str:
    """The server path of ``file`` uploaded as the browser does."""
    with httpx.Client(base_url=url, timeout=120) as http:
        return http.post("/gradio_api/upload", files={"files": (file.name, file.read_bytes())}).json()[0]


def _queue_call(url: str, api_name: str, data: list, event_data: dict | None = None) -> dict:
    """Call an endpoint, private ones too, as the browser does (queue/join, then the event stream); the output:
    ``{"data": [...]}``, or ``{"error": message}`` when it failed (``None`` when the server does not say why)."""
    with httpx.Client(base_url=url, timeout=120) as http:
        dependencies = http.get("/config").json()["dependencies"]
        fn_index = next(d["id"] for d in dependencies if d.get("api_name") == api_name)
        session = uuid.uuid4().hex
        http.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                  "event_data": event_data, "trigger_id": None}).raise_for_status()
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    return message["output"] if message["success"] else {"error": message["output"].get("error")}
    raise AssertionError(f"{api_name}: the event stream ended without a result")


CLICK = {"index": [5, 5], "value": None}
# Each handler that reads a file, as (endpoint, its inputs with ``file`` as the file it reads, event data).
# ``photo`` is a real upload, for the hints' photo.
FILE_READERS = {
    "colorize": ("colorize", lambda file, photo: [file, "cnn.safetensors", 256, 1.0, None, "object", None], None),
    "show_gray": ("show_gray", lambda file, photo: [file], None),
    "suggest": ("suggest", lambda file, photo: [file, 256], CLICK),
    "hints": ("colorize", lambda file, photo: [{"path": photo, "meta": META}, "cnn.safetensors", 256, 1.0,
                                               {"background": None, "layers": [file], "composite": None}, "object",
                                               None], None),
    "clip": ("colorize_clip", lambda file, photo: [file, "cnn.safetensors", 256, True, None], None),
    "clip reference": ("colorize_clip", lambda file, photo: [{"path": photo, "meta": META}, "cnn.safetensors", 256,
                                                            True, file], None),
    "reference": ("colorize", lambda file, photo: [{"path": photo, "meta": META}, "cnn.safetensors", 256, 1.0, None,
                                                   "object", file], None),
    "compare": ("compare", lambda file, photo: [file, "every model", "cnn.safetensors", 1.0], None),
    "batch": ("colorize_batch", lambda file, photo: [[file], "cnn.safetensors", 256, 1.0], None),
}


def _not_uploaded(temp_dir: Path) -> list[str]:
    """Paths a request may name that Gradio did not store for it: under /etc, missing, the weights, an example
    by its own path, a link in Gradio's folder to a file outside it, a way out of that folder, a relative path."""
    link = temp_dir / "link_to_an_example.jpg"
    if not link.is_symlink():
        link.symlink_to(COLOUR)
    weights = next(REPO.glob("weights/*.safetensors"), REPO / "weights" / "cnn.safetensors")
    return ["/etc/passwd", "/etc/no_such_photo.png", str(weights), str(COLOUR), str(link),
            f"{temp_dir}/../../../../../../etc/passwd", "examples/coffee.jpg"]


@pytest.mark.parametrize("reader", FILE_READERS)
def test_a_file_not_uploaded_is_refused_and_the_answer_does_not_tell_whether_it_exists(server, reader):
    # Gradio checks only file objects that carry "meta"; the app must refuse the others itself.
    url, temp_dir = server
    api_name, inputs, event = FILE_READERS[reader]
    photo = _upload(url, COLOUR)
    answers: dict[str, set] = {"without meta": set(), "with meta": set()}
    for path in _not_uploaded(temp_dir):
        for kind, file in (("without meta", {"path": path}), ("with meta", {"path": path, "meta": META})):
            output = _queue_call(url, api_name, inputs(file, photo), event)
            assert "data" not in output, f"{reader} read {path} ({kind}): {str(output)[:300]}"
            answers[kind].add(output["error"])
    assert all(len(errors) == 1 for errors in answers.values()), answers  # one answer, whatever the path
    if reader in ("colorize", "show_gray", "suggest"):  # Gradio lets these through without meta: the app refuses
        assert answers["without meta"] == {REFUSED}
    # (The clip's and the hint layers' files are FileData, which Gradio itself refuses without meta.)


@pytest.mark.parametrize("reader", FILE_READERS)
def test_only_files_are_read_from_gradio_folder(server, reader):
    # Gradio passes any path in its own folder, its folder too; the app reads only files there.
    url, temp_dir = server
    api_name, inputs, event = FILE_READERS[reader]
    output = _queue_call(url, api_name, inputs({"path": str(temp_dir), "meta": META}, _upload(url, COLOUR)), event)
    assert output == {"error": REFUSED}


MALFORMED = {  # values no page sends: a string or a number where a file goes, a clip of {}, hints as a string
    "image str": ("colorize", lambda photo: ["str", "cnn.safetensors", 256, 1.0, None, "object", None], "A photo"),
    "image 123": ("colorize", lambda photo: [123, "cnn.safetensors", 256, 1.0, None, "object", None], "A photo"),
    "hints str": ("colorize", lambda photo: [photo, "cnn.safetensors", 256, 1.0, "str", "object", None],
                  "The painted colours"),
    "reference 7": ("colorize", lambda photo: [photo, "cnn.safetensors", 256, 1.0, None, "object", 7], "A photo"),
    "clip {}": ("colorize_clip", lambda photo: [{}, "cnn.safetensors", 256, True, None], "This input"),
    "batch str": ("colorize_batch", lambda photo: ["str", "cnn.safetensors", 256, 1.0], "The photos"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_value_is_answered_in_one_sentence_and_the_server_keeps_serving(client, server, case):
    # Gradio checks these against its data models before any handler runs; unanswered, the caller saw {"error": null}.
    api_name, inputs, what = MALFORMED[case]
    output = _queue_call(server[0], api_name, inputs({"path": _upload(server[0], GRAY), "meta": META}))
    assert output == {"error": f"{what} must be sent as an uploaded file ({{\"path\": ...}}, as gradio_client's "
                               "handle_file sends it)."}, output
    assert colorize(client, GRAY)[2].size == Image.open(GRAY).size


def test_uploads_and_examples_still_reach_every_handler(server, tmp_path):
    url = server[0]
    photo = _upload(url, COLOUR)
    editor, picker = _queue_call(url, "show_gray", [{"path": photo, "meta": META}])["data"]
    assert Image.open(picker["path"]).size == Image.open(COLOUR).size
    if (REPO / "weights" / "classification.safetensors").exists():
        html = _queue_call(url, "suggest", [picker, 256], CLICK)["data"][0]
        assert "Likely colours at (5, 5)" in html
    hint = _upload(url, _green_disc(tmp_path / "hint.png", Image.open(COLOUR).size))
    hints = {"background": editor["background"], "layers": [{"path": hint, "meta": META}], "composite": None}
    inputs = [{"path": photo}, "cnn.safetensors", 256, 1.0, hints, "object", None]
    _, _, note = _queue_call(url, "colorize", inputs)["data"]
    assert "your colours" in note
    # The first example, as the page loads it: Gradio's own copy in its folder, not the file in examples/.
    first = sorted(EXAMPLES.glob("*.jpg"))[0]
    example = _queue_call(url, "load_example", [0])["data"][0]["value"]
    assert Path(example["path"]).name == first.name and Path(example["path"]).is_relative_to(server[1])
    (gray, _), _, _ = _queue_call(url, "colorize", [example, "cnn.safetensors", 256, 1.0, None, "object", None])["data"]
    assert Image.open(gray["path"]).size == Image.open(first).size


def test_a_photo_with_several_frames_is_colorized_and_the_note_says_so(client, tmp_path):
    frames = [Image.open(GRAY).convert("L").point(lambda v, k=k: v // k) for k in (1, 2, 3)]
    frames[0].save(tmp_path / "pages.tiff", save_all=True, append_images=frames[1:])
    _, shown, _, note = colorize(client, tmp_path / "pages.tiff")
    assert shown.size == frames[0].size
    assert "3 frames" in note and "only the first" in note and str(tmp_path) not in note


def test_big_uploads_do_not_hold_up_an_ordinary_photo(client, tmp_path):
    # Three colour photos at the 8 MP limit and the largest render size (a few seconds of work each) go first;
    # an ordinary photo sent after them must come back before the first of them: big photos have a lane of
    # their own, one at a time at low priority, and waiting for it holds no place an ordinary photo needs.
    big = tmp_path / "big.jpg"
    Image.open(COLOUR).convert("RGB").resize((3400, 2350), Image.BICUBIC).save(big, quality=90)
    done: dict[str, float] = {}
    start = time.monotonic()
    jobs = [client.submit(handle_file(str(big)), render_size=512, api_name="/colorize") for _ in range(3)]
    time.sleep(0.5)
    small = client.submit(handle_file(str(GRAY)), api_name="/colorize")
    pending = {"small": small, **{f"big{i}": job for i, job in enumerate(jobs)}}
    while pending and time.monotonic() - start < 300:
        for name, job in list(pending.items()):
            if job.done():
                done[name] = time.monotonic() - start
                job.result()  # raises if the request failed
                del pending[name]
        time.sleep(0.05)
    assert not pending, f"not finished in 300 s: {sorted(pending)}"
    first_big = min(v for k, v in done.items() if k.startswith("big"))
    assert done["small"] < first_big, done


def _clip(path: Path, frames: int = 12, size: tuple[int, int] = (160, 96), seconds_per_frame: float = 1 / 12) -> Path:
    """A short H.264 clip of the coffee example sliding right (PyAV, as the app's video path uses)."""
    import av

    photo = np.asarray(Image.open(COLOUR).convert("RGB").resize((size[0] * 2, size[1] * 2)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=round(1 / seconds_per_frame))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            frame = np.ascontiguousarray(photo[20 : 20 + size[1], 4 * i : 4 * i + size[0]])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_the_video_tab_colorizes_a_clip(client, tmp_path):
    import av

    result, note = client.predict(handle_file(str(_clip(tmp_path / "clip.mp4"))), api_name="/colorize_clip")
    video = result["video"] if isinstance(result, dict) else result
    with av.open(video) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264" and len(frames) == 12
    assert frames[0].shape[:2] == (96, 160)
    chroma = np.abs(frames[6].astype(int) - frames[6].mean(axis=2, keepdims=True)).mean()
    assert chroma > 1, "a colorized clip has colour"
    assert "12 frames of 160x96" in note and "steadied over time" in note


def test_a_file_that_is_not_a_video_gets_a_clear_error(client, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 100)
    with pytest.raises(Exception, match="fake.mp4") as info:
        client.predict(handle_file(str(fake)), api_name="/colorize_clip")
    assert type(info.value).__name__ == "AppError"


def test_a_clip_of_many_tiny_frames_is_refused_by_its_frame_count(client, tmp_path):
    """Issue 26: the length bound alone let through 700 frames of 16x16 at 1,000 frames/s (0.7 s), each a pass of
    the network; the app's budget (600 frames by default) refuses it before any work, in one sentence."""
    import av

    clip = tmp_path / "fast.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for i in range(700):
            frame = np.full((16, 16, 3), (i * 7 % 256, 90, 160), np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    start = time.monotonic()
    with pytest.raises(Exception, match=r"fast\.mp4: 700 frames; at most 600 frames are accepted") as info:
        client.predict(handle_file(str(clip)), api_name="/colorize_clip")
    assert type(info.value).__name__ == "AppError" and "COLORIZE" not in str(info.value)
    assert time.monotonic() - start < 30


# --- Many photos, side by side (issue 25) ---------------------------------------------------------------------------

def test_many_photos_and_a_zip_of_them_come_back_as_one_zip_of_full_resolution_pngs(client, tmp_path):
    import zipfile

    archive = tmp_path / "trip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(COLOUR, "../../day one/coffee.jpg")
        zf.writestr("notes.txt", b"not a photo")
    path, note = client.predict([handle_file(str(GRAY)), handle_file(str(archive))], api_name="/colorize_batch")
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["camera_bw_colorized.png", "day_one/coffee_colorized.png"]
        assert Image.open(zf.open("day_one/coffee_colorized.png")).size == Image.open(COLOUR).size
        assert Image.open(zf.open("camera_bw_colorized.png")).mode == "RGB"
    assert note.startswith("2 photos colorized") and "1 could not be" in note and "trip.zip/notes.txt" in note


@pytest.mark.parametrize("kind, message", [
    ("100,000 entries", "declares at least 65,535 entries"),
    ("10 GB declared", "declares a.png as 4,096 MB"),
    ("only a nested ZIP", "No photos found in what was sent; trip.zip: inner.zip is a ZIP inside the ZIP"),
    ("not a ZIP at all", "The ZIP trip is not a readable ZIP"),
])
def test_hostile_zips_get_one_clear_message_and_the_server_keeps_serving(client, tmp_path, kind, message):
    import struct
    import zipfile

    from gradio_client.exceptions import AppError

    archive = tmp_path / "trip.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        if kind == "100,000 entries":
            for i in range(100_000):
                zf.writestr(f"{i:x}", b"")
        elif kind == "10 GB declared":
            zf.writestr("a.png", b"\0" * 1000)
        elif kind == "only a nested ZIP":
            zf.writestr("inner.zip", b"PK\x03\x04" + b"\0" * 100)
    if kind == "10 GB declared":  # the directory's size field: 4 GB, the most a plain entry declares
        data = bytearray(archive.read_bytes())
        struct.pack_into("<L", data, data.index(b"PK\x01\x02") + 24, 0xFFFFFFFF)
        archive.write_bytes(bytes(data))
    if kind == "not a ZIP at all":
        archive.write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(AppError, match=re.escape(message)):
        client.predict([handle_file(str(archive))], api_name="/colorize_batch")
    _, shown, _, _ = colorize(client, GRAY)
    assert shown.size == Image.open(GRAY).size


def test_compare_shows_the_photo_under_every_model_beside_gray_and_the_original(client):
    gallery, note = client.predict(handle_file(str(COLOUR)), api_name="/compare")
    captions = [item["caption"] for item in gallery]
    assert captions[0].startswith("Gray: ") and captions[-1].startswith("Original: colourfulness")
    assert len(gallery) == len(list(REPO.glob("weights/*.safetensors"))) + 2
    assert all(re.search(r": \d+\.\d\d dB, colourfulness \d+\.\d$", c) for c in captions[:-1]), captions
    assert all(Image.open(item["image"]).size == Image.open(COLOUR).size for item in gallery)  # under 1024 px
    assert "scored against your original" in note and note.count("\n| ") == len(gallery) + 1  # a header, each shown
    gallery, note = client.predict(handle_file(str(GRAY)), "render sizes", api_name="/compare")
    assert [item["caption"] for item in gallery] == ["Gray"] + [f"render size {s}" for s in (128, 256, 384, 512)]
    assert "Pick the one" in note


def test_a_reference_photo_of_the_same_scene_brings_the_colours_closer_and_a_gray_one_is_refused(client, tmp_path):
    reference = tmp_path / "reference.jpg"
    Image.open(COLOUR).transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((480, 320)).save(reference)
    gray = tmp_path / "gray.png"
    Image.open(COLOUR).convert("L").save(gray)
    truth = np.asarray(Image.open(COLOUR).convert("RGB"), np.float32)
    _, plain, _, _ = colorize(client, gray)
    _, steered, _, _ = colorize(client, gray, reference=handle_file(str(reference)))
    error = [float(np.abs(np.asarray(image, np.float32) - truth).mean()) for image in (plain, steered)]
    assert error[1] < error[0] - 1, error
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="the reference has no colour to give"):
        colorize(client, gray, reference=handle_file(str(gray)))


def test_a_clip_takes_one_reference_for_every_frame_and_a_gray_one_is_refused(client, tmp_path):
    from gradio_client.exceptions import AppError

    clip = _clip(tmp_path / "clip.mp4")
    reference = tmp_path / "reference.png"
    Image.open(COLOUR).resize((160, 96)).save(reference)
    result, note = client.predict(handle_file(str(clip)), reference=handle_file(str(reference)),
                                  api_name="/colorize_clip")
    assert "12 frames" in note
    gray = tmp_path / "gray.png"
    Image.open(COLOUR).convert("L").save(gray)
    with pytest.raises(AppError, match="the reference has no colour to give"):
        client.predict(handle_file(str(clip)), reference=handle_file(str(gray)), api_name="/colorize_clip")
