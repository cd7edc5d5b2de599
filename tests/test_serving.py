"""The serving layer without a server: lanes, costs, limits, checks of raw values, files and each request's work
(issues 25 and 26)."""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
import time

import pytest
from app_server import EXAMPLES

from colorization.serving import (COSTS, NOT_UPLOADED, Busy, Header, Lane, Lanes, Limits, RequestError, choice,
                                  colorize_clip_upload, colorize_seconds, colorize_upload, flag, gray_seconds,
                                  gray_version, hint_files, number, painted_share, read_header, read_hint_layers,
                                  render_size, safe_stem, session_key, stored_file, suggest_seconds, upload_path)


def test_requests_waiting_for_a_lane_hold_no_thread():
    lane = Lane("test", workers=1)
    release = threading.Event()

    async def main():
        tasks = [asyncio.create_task(lane.run(f"s{i}", 1.0, release.wait, 10)) for i in range(50)]
        await asyncio.sleep(0.1)
        threads = threading.active_count()
        assert lane.held == 50
        release.set()
        assert all(await asyncio.gather(*tasks))
        return threads

    before = threading.active_count()
    assert asyncio.run(main()) <= before + 1  # the lane's one worker; the 49 waiting requests hold none
    assert lane.held == 0


def test_a_full_lane_and_a_session_over_its_share_are_refused_at_once():
    lane = Lane("big", workers=1, capacity=3, per_session=2, what="large photos")
    release = threading.Event()

    async def main():
        held = [asyncio.create_task(lane.run(s, 1.0, release.wait, 10)) for s in ("a", "a", "b")]
        await asyncio.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(Busy, match="busy with large photos"):
            await lane.run("c", 1.0, print)
        with pytest.raises(Busy, match="You already have 2 large photos in progress"):
            await lane.run("a", 1.0, print)
        refused_in = time.monotonic() - start
        release.set()
        await asyncio.gather(*held)
        return refused_in

    assert asyncio.run(main()) < 0.5
    assert lane.held == 0


def _served_order(lane: Lane, requests: list[tuple[str, float]], later: list[tuple[str, float]]) -> list[str]:
    """The order in which ``lane`` (one worker) serves ``requests`` (session, cost), then ``later`` ones sent while
    the first still runs; each request is named session + its number within its session."""
    order: list[str] = []
    gate = threading.Event()

    def work(name: str) -> None:
        gate.wait(10)
        order.append(name)

    async def main():
        counts: dict[str, int] = {}

        def send(session: str, cost: float) -> asyncio.Task:
            counts[session] = counts.get(session, -1) + 1
            return asyncio.create_task(lane.run(session, cost, work, f"{session}{counts[session]}"))

        tasks = [send(*request) for request in requests]
        await asyncio.sleep(0.05)
        tasks += [send(*request) for request in later]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    return order


def test_a_free_worker_goes_to_the_session_served_least():
    # "many" had four waiting before "one" came; "one" is served next, not fifth.
    assert _served_order(Lane("test", 1), [("many", 1.0)] * 4, [("one", 1.0)]) == [
        "many0", "one0", "many1", "many2", "many3"]


def test_a_session_is_served_by_its_share_of_seconds_not_of_turns():
    # Requests of 4 s against requests of 1 s: the light session gets four of its own between two heavy ones.
    order = _served_order(Lane("test", 1), [("heavy", 4.0)] * 3, [("light", 1.0)] * 6)
    assert order == ["heavy0", "light0", "light1", "light2", "light3", "heavy1", "light4", "light5", "heavy2"]


def test_a_client_sending_one_costly_request_at_a_time_still_waits_its_share():
    # Closed loop, as a script does: one costly request, and the next once it is done; its account is kept.
    lane = Lane("test", workers=1)
    order: list[str] = []
    gate = threading.Event()

    def work(name: str) -> None:
        gate.wait(10)
        # Costly work takes time: while it runs, a client whose request just ended sends its next one. (Work of no
        # duration let the worker pass to the heavy client's waiting request before a light client had resumed,
        # 3 runs in 300 under load: work-conserving, and no lane can wait for a request not yet sent.)
        time.sleep(0.05)
        order.append(name)

    async def heavy_client():
        for i in range(3):
            await lane.run("heavy", 5.0, work, f"heavy{i}")

    async def light_client(name: str):
        for i in range(3):
            await lane.run(name, 1.0, work, f"{name}{i}")

    async def main():
        heavy = asyncio.create_task(heavy_client())
        await asyncio.sleep(0.05)
        lights = [asyncio.create_task(light_client(name)) for name in ("a", "b")]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(heavy, *lights)

    asyncio.run(main())
    # After its first request, the heavy client's next one waits until both light clients have had their 3 x 1 s.
    assert order.index("heavy1") > max(order.index("a2"), order.index("b2")), order


def test_context_variables_and_errors_cross_to_the_worker():
    lane = Lane("test", workers=2)
    name = contextvars.ContextVar("name")

    def read() -> str:
        return name.get()

    def fail() -> None:
        raise ValueError("the worker's message")

    async def main():
        name.set("this request")
        assert await lane.run("s", 1.0, read) == "this request"
        with pytest.raises(ValueError, match="the worker's message"):
            await lane.run("s", 1.0, fail)

    asyncio.run(main())
    assert lane.held == 0


def test_a_request_that_stops_waiting_gives_its_place_back_and_running_work_keeps_its_worker():
    lane = Lane("test", workers=1, capacity=2)
    release = threading.Event()

    async def main():
        running = asyncio.create_task(lane.run("a", 1.0, release.wait, 10))
        waiting = asyncio.create_task(lane.run("b", 1.0, release.wait, 10))
        await asyncio.sleep(0.05)
        waiting.cancel()  # e.g. the client closed its connection
        running.cancel()  # its work goes on in the thread and holds the worker until it ends
        await asyncio.sleep(0.05)
        assert lane.held == 1
        late = asyncio.create_task(lane.run("c", 1.0, lambda: "served"))
        await asyncio.sleep(0.05)
        assert not late.done()  # the worker is still busy with the cancelled request's work
        release.set()
        return await late

    assert asyncio.run(main()) == "served"
    assert lane.held == 0


def test_lane_settings_are_checked():
    with pytest.raises(ValueError, match="capacity >= workers"):
        Lane("bad", workers=2, capacity=1)


def test_a_request_costs_by_its_pixels_render_size_model_hints_and_scoring():
    arch = "effnet-unet regression"
    plain = COSTS.colorize((1024, 768), 128, arch)
    assert 0.1 < plain < 0.6  # about 0.3 s: the load test's photo
    assert COSTS.colorize((1024, 768), 512, arch) > 2 * plain  # the network sees 16x the pixels
    assert COSTS.colorize((1024, 768), 128, arch, scored=False) < plain  # a gray photo is not scored
    assert COSTS.colorize((1024, 768), 128, "effnet-unet classification") > plain  # a slower network
    assert COSTS.colorize((1024, 768), 128, "an unknown network") == COSTS.colorize(
        (1024, 768), 128, max(COSTS.network, key=COSTS.network.get))  # costs as the slowest known
    # Issue 26: a 1.99 MP colour photo plus 8 hint layers of 8 MP each was sent to the ordinary lane by its header.
    hinted = COSTS.colorize((1632, 1220), 128, arch, [(3265, 2450)] * 8)
    assert hinted > 10 * plain
    assert COSTS.gray((3265, 2450)) > COSTS.gray((1024, 768)) and COSTS.suggest((1024, 768), 512, arch) > 0


def test_a_header_is_read_without_decoding_and_an_unreadable_file_has_none(tmp_path):
    from PIL import Image

    Image.new("RGB", (300, 200)).save(tmp_path / "colour.png")
    Image.new("L", (30, 20)).save(tmp_path / "gray.png")
    (tmp_path / "not.png").write_bytes(b"not an image")
    assert read_header(str(tmp_path / "colour.png")) == Header((300, 200), gray=False)
    assert read_header(str(tmp_path / "gray.png")) == Header((30, 20), gray=True)
    assert read_header(str(tmp_path / "not.png")) is None and read_header(str(tmp_path / "missing.png")) is None


def test_hint_layers_are_scaled_to_the_photo_and_composited(tmp_path):
    from PIL import Image

    Image.new("RGBA", (10, 10), (0, 200, 0, 255)).save(tmp_path / "full.png")
    half = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    half.paste((200, 0, 0, 255), (0, 0, 20, 10))
    half.save(tmp_path / "half.png")
    hints = read_hint_layers([str(tmp_path / "full.png"), str(tmp_path / "half.png")], (40, 40), 8)
    assert hints.size == (40, 40) and painted_share(hints) == 1.0
    assert hints.getpixel((5, 5))[:3] == (200, 0, 0) and hints.getpixel((5, 35))[:3] == (0, 200, 0)
    assert read_hint_layers([], (40, 40), 8) is None
    Image.new("RGB", (10, 10)).save(tmp_path / "opaque.png")
    with pytest.raises(ValueError, match="transparency"):
        read_hint_layers([str(tmp_path / "opaque.png")], (40, 40), 8)


# --- Limits, checks of raw values, files ----------------------------------------------------------------------------

def test_limits_come_from_the_environment_and_a_bad_value_names_its_variable(monkeypatch):
    for variable in Limits.VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("COLORIZE_MAX_VIDEO_FRAMES", raising=False)
    monkeypatch.delenv("COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS", raising=False)
    assert Limits.from_environment() == Limits()
    assert Limits().photos_admitted == 6 + 2 * 2 and Limits().clips_admitted == 3 and Limits().clip_seconds == 30
    monkeypatch.setenv("COLORIZE_CONCURRENCY", "4")
    monkeypatch.setenv("COLORIZE_BIG_SECONDS", "0")  # every request in the big lane
    monkeypatch.setenv("COLORIZE_MAX_VIDEO_MEGAPIXELS", "1")
    limits = Limits.from_environment()
    assert limits.concurrency == 4 and limits.big_seconds == 0 and limits.video_budget.megapixels == 600
    for variable, value, words in [("COLORIZE_CONCURRENCY", "2.5", "positive whole number"),
                                   ("COLORIZE_QUEUE_SIZE", "0", "positive whole number"),
                                   ("COLORIZE_MAX_MEGAPIXELS", "nan", "positive number"),
                                   ("COLORIZE_BIG_SECONDS", "-1", "positive number")]:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ValueError, match=f"{variable} must be a {words}, got '{value}'"):
            Limits.from_environment()
        monkeypatch.delenv(variable)


@pytest.mark.parametrize("value, message", [
    (True, "must be a number between 0 and 2, got True"), ("x", "must be a number between 0 and 2"),
    (None, "must be a number"), (float("nan"), "must be between 0 and 2, got nan"), (2.5, "must be between 0 and 2"),
    ([1], "must be a number")])
def test_a_number_from_the_api_is_a_finite_number_in_range(value, message):
    assert number(1.5, "Colour intensity", 0, 2) == 1.5 and number("0.5", "Colour intensity", 0, 2) == 0.5
    with pytest.raises(RequestError, match=f"Colour intensity {message}"):
        number(value, "Colour intensity", 0, 2)


def test_render_size_model_and_flag_checks():
    assert render_size(256) == 256 and render_size(128.0) == 128
    with pytest.raises(RequestError, match="multiple of 32, got 250"):
        render_size(250)
    with pytest.raises(RequestError, match="between 128 and 512, got 4096"):
        render_size(4096)
    assert choice("cnn.safetensors", "model", ["cnn.safetensors", "gan.safetensors"]) == "cnn.safetensors"
    with pytest.raises(RequestError, match="Unknown model '../x'; choose one of: a, b."):
        choice("../x", "model", ["a", "b"])
    with pytest.raises(RequestError, match="Unknown model 3"):
        choice(3, "model", ["a"])
    assert flag(False, "Steady colours") is False
    with pytest.raises(RequestError, match="Steady colours must be true or false, got 1"):
        flag(1, "Steady colours")


def test_only_files_stored_in_the_folder_are_read_and_every_refusal_reads_the_same(tmp_path):
    folder = tmp_path / "gradio"
    (folder / "upload").mkdir(parents=True)
    photo = folder / "upload" / "photo.png"
    photo.write_bytes(b"x")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"x")
    (folder / "link.png").symlink_to(outside)
    (folder / "inner_link.png").symlink_to(photo)
    assert stored_file(str(photo), str(folder)) == str(photo.resolve())
    assert stored_file(str(folder / "inner_link.png"), str(folder)) == str(photo.resolve())
    for path in ["/etc/passwd", "/etc/no_such.png", str(outside), str(folder / "link.png"), str(folder),
                 f"{folder}/../secret.png", "upload/photo.png", "bad\0name.png", None, 3, "x" * 5000]:
        with pytest.raises(RequestError) as info:
            stored_file(path, str(folder))
        assert str(info.value) == NOT_UPLOADED
    assert upload_path({"path": str(photo), "orig_name": "a.png"}, str(folder)) == str(photo.resolve())
    for value in (None, "str", 123, {}, {"path": 5}):
        with pytest.raises(RequestError, match="Upload a clip first."):
            upload_path(value, str(folder), "Upload a clip first.")


def test_a_multiple_file_upload_is_checked_file_by_file(tmp_path):
    from colorization.serving import upload_files

    stored = tmp_path / "a"
    stored.write_bytes(b"x")
    assert upload_files([{"path": str(stored), "orig_name": "trip.zip"}, {"path": str(stored)}], str(tmp_path)) == [
        (str(stored), "trip.zip"), (str(stored), "a")]
    for value, message in (([], "Upload one or more"), (None, "Upload one or more"), ("a", "Upload one or more"),
                           ([{"path": str(stored)}] * 3, "3 files sent; at most 2"), ([{"url": "x"}], "must be uploads"),
                           ([{"path": "/etc/passwd"}], NOT_UPLOADED)):
        with pytest.raises(RequestError, match=re.escape(message)):
            upload_files(value, str(tmp_path), max_files=2)


def test_hint_layers_of_an_editor_value_are_checked(tmp_path):
    layer = tmp_path / "layer.png"
    layer.write_bytes(b"x")
    value = {"background": None, "layers": [{"path": str(layer)}], "composite": None}
    assert hint_files(None, str(tmp_path)) == [] and hint_files(value, str(tmp_path)) == [str(layer.resolve())]
    with pytest.raises(RequestError, match="at most 8 layers, got 9"):
        hint_files({"layers": [{"path": str(layer)}] * 9}, str(tmp_path), 8)
    for bad in ("str", {"layers": "x"}, {"layers": [3]}, {}):
        with pytest.raises(RequestError, match="Hints must be an image editor value"):
            hint_files(bad, str(tmp_path))
    with pytest.raises(RequestError, match=NOT_UPLOADED):
        hint_files({"layers": [{"path": "/etc/passwd"}]}, str(tmp_path))


@pytest.mark.parametrize("name, expected", [("x" * 300 + ".png", "x" * 64), ("bad\x00name.png", "badname"),
                                            ("../../etc/passwd.png", "passwd"), ("..png", "photo"),
                                            ("photo d'été.jpg", "photo_d_été"), ("", "photo")])
def test_any_upload_name_gives_a_safe_stem(name, expected):
    assert safe_stem(name) == expected


# --- The work of each request ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def colorizer():
    from colorization import available_weights, load_colorizer

    weights = available_weights()
    if not weights:
        pytest.skip("no weights/*.safetensors")
    return load_colorizer(weights[0])


def test_a_colour_upload_is_colorized_scored_and_written_under_its_name(colorizer, tmp_path):
    from PIL import Image

    photo = tmp_path / "upload" / "0123abcd"
    photo.parent.mkdir()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(photo, "PNG")
    layer = tmp_path / "layer.png"
    disc = Image.new("RGBA", (32, 24), (0, 0, 0, 0))
    disc.paste((0, 200, 0, 255), (0, 0, 8, 6))
    disc.save(layer)
    result = colorize_upload(colorizer, str(photo), "../my photo.png", str(tmp_path), 128, 1.0, [str(layer)])
    assert result.colorized.name == "my_photo_colorized.png" and result.gray.name == "my_photo_gray.png"
    assert result.colorized.parent.parent == tmp_path and Image.open(result.colorized).size == (64, 48)
    assert result.scores and set(result.scores) >= {"model", "gray"} and result.painted == pytest.approx(1 / 16)
    gray = tmp_path / "gray.png"
    Image.new("L", (40, 30), 90).save(gray)
    plain = colorize_upload(colorizer, str(gray), "gray.png", str(tmp_path), 128)
    assert plain.scores is None and plain.painted == 0 and plain.colorized.parent != result.colorized.parent


def test_a_failed_request_names_the_upload_and_its_layers_as_sent_never_the_server_path(colorizer, tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48)).save(photo)
    broken, opaque = tmp_path / "broken.png", tmp_path / "opaque.png"
    broken.write_bytes(b"not an image")
    Image.new("RGB", (64, 48)).save(opaque)
    with pytest.raises(RequestError) as info:
        colorize_upload(colorizer, str(broken), "mine.png", str(tmp_path), 128)
    assert "mine.png" in str(info.value) and str(tmp_path) not in str(info.value)
    for layers, named in (([str(broken)], "hint layer 1"), ([str(photo), str(opaque)], "transparency")):
        with pytest.raises(RequestError) as info:
            colorize_upload(colorizer, str(photo), "mine.png", str(tmp_path), 128, 1.0, layers)
        assert named in str(info.value) and str(tmp_path) not in str(info.value)
    with pytest.raises(RequestError, match="the photo") as info:
        gray_version(str(broken), str(tmp_path))
    assert str(tmp_path) not in str(info.value)
    assert gray_version(str(photo), str(tmp_path)).name == "gray.png"


def test_a_clip_is_colorized_within_the_limits_and_a_broken_one_is_named_as_sent(colorizer, tmp_path):
    import av
    import numpy as np

    clip = tmp_path / "upload.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            frame = np.full((48, 64, 3), (40 * i, 90, 160), np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    seen = []
    result = colorize_clip_upload(colorizer, str(clip), "holiday.mov", str(tmp_path), 128,
                                  progress=lambda done, total: seen.append(done))
    assert result.path.name == "holiday_colorized.mp4" and result.stats.frames == 4 and seen
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a clip")
    with pytest.raises(RequestError, match="holiday.mov") as info:
        colorize_clip_upload(colorizer, str(fake), "holiday.mov", str(tmp_path), 128)
    assert str(tmp_path) not in str(info.value)


def test_requests_choose_their_lane_by_estimated_seconds(tmp_path):
    from PIL import Image

    lanes = Lanes(Limits(big_seconds=1.0))
    assert lanes.choose(0.3) is lanes.ordinary and lanes.choose(1.5) is lanes.big
    assert lanes.big.capacity == 6 and lanes.ordinary.workers == 2
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    Image.new("RGB", (1024, 768)).save(small)
    Image.new("RGB", (1632, 1224)).save(big)
    arch = "effnet-unet regression"
    assert colorize_seconds(str(small), 128, arch) < 1.0 < colorize_seconds(str(big), 512, arch)
    assert colorize_seconds(str(small), 128, arch, [str(big)] * 8) > 1.0  # the hinted request
    assert colorize_seconds(str(tmp_path / "missing.png"), 512, arch) == 0  # fails at once when decoded
    assert 0 < gray_seconds(str(small)) < gray_seconds(str(big)) and suggest_seconds(str(big), 512, arch) > 0
    assert session_key("abc", "1.2.3.4") == "abc" and session_key(None, "1.2.3.4") == "address 1.2.3.4"


# --- Many photos, side by side ---------------------------------------------------------------------------------------

def _photo(path, size=(64, 48), colour=(200, 120, 40)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "PNG")
    return str(path)


def test_a_batch_takes_photos_and_zips_names_each_result_and_checks_its_limits_before_decoding(tmp_path):
    import zipfile

    from colorization.serving import plan_batch

    upload = tmp_path / "upload"
    one, two = _photo(upload / "a"), _photo(upload / "b", (2000, 1500))
    archive = upload / "c"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("trip/day 1.png", (upload / "a").read_bytes())
        zf.writestr("../trip/day 1.png", (upload / "a").read_bytes())  # the same name once cleaned
        zf.writestr("notes.txt", b"not a photo")
        zf.writestr("inner.zip", archive.read_bytes() if archive.exists() else b"PK\x03\x04")
    text = upload / "d"
    text.write_text("hello")
    batch = plan_batch([(one, "../a.png"), (two, "b.jpg"), (str(archive), "holiday.zip"), (str(text), "d.txt")],
                       str(tmp_path), Limits())
    names = [item.name for item in batch.items]
    assert names == ["a", "b", "trip/day_1", "trip/day_1_2", "notes", "d"]
    assert batch.notes == ["holiday.zip: inner.zip is a ZIP inside the ZIP; those are not opened"]
    assert batch.megapixels == pytest.approx((64 * 48 * 3 + 2000 * 1500) / 1e6)
    assert batch.items[4].header is None and batch.items[5].header is None  # decoding them will say why
    assert [item.sent for item in batch.items] == ["a.png", "b.jpg", "holiday.zip/trip/day_1.png",
                                                   "holiday.zip/trip/day_1.png", "holiday.zip/notes.txt", "d.txt"]
    assert batch.seconds(256, "effnet-unet regression") > batch.seconds(128, "effnet-unet regression") > 0
    with pytest.raises(RequestError, match="Upload one or more photos"):
        plan_batch([], str(tmp_path))
    with pytest.raises(RequestError, match="3 files sent; at most 2 photos"):
        plan_batch([(one, "a")] * 3, str(tmp_path), Limits(max_batch_photos=2))
    with pytest.raises(RequestError, match="More than 3 photos sent"):
        plan_batch([(one, "a"), (str(archive), "z.zip")], str(tmp_path), Limits(max_batch_photos=3))
    with pytest.raises(RequestError, match="hold 3 megapixels; at most 2 are colorized"):
        plan_batch([(two, "b")], str(tmp_path), Limits(max_batch_megapixels=2))
    with zipfile.ZipFile(upload / "f", "w") as zf:
        for i in range(9):
            zf.writestr(f"{i}.txt", b"")
    with pytest.raises(RequestError, match="The ZIP nine declares 9 entries .* at most 8 entries are read"):
        plan_batch([(str(upload / "f"), "nine.zip")], str(tmp_path), Limits(max_batch_photos=2))
    with pytest.raises(RequestError, match="No photos found in what was sent; x.zip: inner.zip is a ZIP inside"):
        with zipfile.ZipFile(upload / "e", "w") as zf:
            zf.writestr("inner.zip", archive.read_bytes())
        plan_batch([(str(upload / "e"), "x.zip")], str(tmp_path))


def test_a_batch_is_one_zip_of_full_resolution_pngs_and_a_broken_photo_is_named_while_the_others_are_done(
        colorizer, tmp_path):
    import zipfile

    from PIL import Image

    from colorization.serving import colorize_batch, plan_batch

    upload = tmp_path / "upload"
    good, gray = _photo(upload / "1", (96, 64)), upload / "2"
    Image.new("L", (50, 40), 100).save(gray, "PNG")
    broken = upload / "3"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    batch = plan_batch([(good, "kitchen.png"), (str(gray), "grandma.png"), (str(broken), "broken.png")],
                       str(tmp_path))
    seen = []
    result = colorize_batch(colorizer, batch, str(tmp_path), 128, progress=lambda done, total: seen.append(
        (done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)] and result.colorized == 2
    assert len(result.notes) == 1 and result.notes[0].startswith("broken.png") and str(broken) not in result.notes[0]
    with zipfile.ZipFile(result.path) as zf:
        assert zf.namelist() == ["kitchen_colorized.png", "grandma_colorized.png"]
        sizes = [Image.open(zf.open(name)).size for name in zf.namelist()]
    assert sizes == [(96, 64), (50, 40)] and result.path.name == "colorized.zip"
    with pytest.raises(RequestError, match="None of the 1 photos could be colorized: broken.png"):
        colorize_batch(colorizer, plan_batch([(str(broken), "broken.png")], str(tmp_path)), str(tmp_path), 128)


def test_a_comparison_shows_every_variant_beside_gray_and_scores_a_colour_photo(colorizer, tmp_path):
    from PIL import Image

    from colorization.serving import Variant, compare, compare_seconds

    photo = _photo(tmp_path / "upload" / "x", (1600, 800))
    variants = [Variant("small", colorizer, 128), Variant("large", colorizer, 256)]
    result = compare(variants, photo, "../cat.png", str(tmp_path))
    captions = [caption for _, caption in result.images]
    assert captions[0].startswith("Gray: ") and captions[1].startswith("small: ") and captions[2].startswith("large: ")
    assert captions[3].startswith("Original: colourfulness") and set(result.scores) == {"small", "large"}
    assert all(Image.open(path).size == (1024, 512) for path, _ in result.images)
    assert result.images[0][0].name == "cat_0.png"
    gray = tmp_path / "g.png"
    Image.new("L", (60, 40), 90).save(gray)
    plain = compare(variants, str(gray), "g.png", str(tmp_path))
    assert [caption for _, caption in plain.images] == ["Gray", "small", "large"] and plain.scores is None
    seconds = compare_seconds(photo, [(128, "effnet-unet regression"), (256, "effnet-unet regression")])
    assert 0 < seconds < COSTS.colorize((1600, 800), 256, "effnet-unet regression") * 2
    broken = tmp_path / "b.png"
    broken.write_bytes(b"nothing")
    with pytest.raises(RequestError, match="b.png"):
        compare(variants, str(broken), "b.png", str(tmp_path))


def test_a_live_preview_is_screen_sized_follows_the_strokes_and_prepares_each_photo_once(colorizer, tmp_path):
    import numpy as np
    from PIL import Image

    from colorization.serving import live_preview, live_seconds

    photo = tmp_path / "upload" / "p"
    photo.parent.mkdir()
    Image.open(EXAMPLES / "coffee.jpg").convert("L").resize((2048, 1365)).save(photo, "PNG")
    gray, plain = live_preview(colorizer, str(photo), str(tmp_path), 128)
    assert Image.open(gray).size == Image.open(plain).size == (1024, 683)
    layer = Image.new("RGBA", (2048, 1365), (0, 0, 0, 0))
    layer.paste((0, 220, 0, 255), (900, 600, 1100, 760))  # a green patch on the coffee, in photo pixels
    layer_path = tmp_path / "layer.png"
    layer.save(layer_path)
    gray_again, painted = live_preview(colorizer, str(photo), str(tmp_path), 128, hints=[str(layer_path)])
    assert gray_again == gray  # the photo was prepared once
    before, after = (np.asarray(Image.open(p).convert("RGB"), np.float32) for p in (plain, painted))
    patch = (slice(310, 370), slice(460, 540))  # inside the painted patch at preview scale
    assert after[patch][..., 1].mean() - after[patch][..., 0].mean() > before[patch][..., 1].mean() - before[
        patch][..., 0].mean() + 10  # greener where painted
    seconds = live_seconds(str(photo), 128, "effnet-unet regression", [str(layer_path)])
    assert 0 < seconds < COSTS.colorize((2048, 1365), 128, "effnet-unet regression", [(2048, 1365)])
    with pytest.raises(RequestError, match="the painted colours"):
        (tmp_path / "bad.png").write_bytes(b"nothing")
        live_preview(colorizer, str(photo), str(tmp_path), 128, hints=[str(tmp_path / "bad.png")])


def test_a_reference_photo_steers_the_colours_and_its_matches_are_shown(colorizer, tmp_path):
    import numpy as np
    from PIL import Image

    from colorization.serving import live_preview, show_matches

    upload = tmp_path / "upload"
    upload.mkdir()
    original = Image.open(EXAMPLES / "coffee.jpg").convert("RGB")
    gray, reference = upload / "gray.png", upload / "reference.jpg"
    original.convert("L").save(gray)
    original.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((480, 320)).save(reference)  # the same scene
    plain = colorize_upload(colorizer, str(gray), "gray.png", str(tmp_path), 128)
    steered = colorize_upload(colorizer, str(gray), "gray.png", str(tmp_path), 128, reference=str(reference))
    error = [np.abs(np.asarray(Image.open(r.colorized), np.float32) - np.asarray(original, np.float32)).mean()
             for r in (plain, steered)]
    assert error[1] < error[0], error  # closer to the true colours with a reference of the same scene
    _, preview = live_preview(colorizer, str(gray), str(tmp_path), 128, reference=str(reference))
    assert Image.open(preview).size == original.size
    photo_png, reference_png, share, gated = show_matches(colorizer, str(gray), str(reference), str(tmp_path), 128)
    assert Image.open(photo_png).size == original.size and Image.open(reference_png).size == (480, 320)
    assert 0 < share <= 1 and not gated
    flat = upload / "flat.png"
    Image.new("L", (60, 40), 120).save(flat)
    with pytest.raises(RequestError, match="the reference has no colour to give"):
        colorize_upload(colorizer, str(gray), "gray.png", str(tmp_path), 128, reference=str(flat))
    (upload / "junk").write_bytes(b"junk")
    with pytest.raises(RequestError, match="the reference") as refused:
        colorize_upload(colorizer, str(gray), "gray.png", str(tmp_path), 128, reference=str(upload / "junk"))
    assert str(upload) not in str(refused.value)
