"""The serving layer without a server: what a request costs, and lanes (issue 26)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from colorization.serving import COSTS, Busy, Header, Lane, painted_share, read_header, read_hint_layers


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
