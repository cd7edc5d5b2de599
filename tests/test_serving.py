"""The serving layer without a server: lanes (issue 26)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from colorization.serving import Busy, Lane


def test_requests_waiting_for_a_lane_hold_no_thread():
    lane = Lane("test", workers=1)
    release = threading.Event()

    async def main():
        tasks = [asyncio.create_task(lane.run(f"s{i}", release.wait, 10)) for i in range(50)]
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
        held = [asyncio.create_task(lane.run(s, release.wait, 10)) for s in ("a", "a", "b")]
        await asyncio.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(Busy, match="busy with large photos"):
            await lane.run("c", print)
        with pytest.raises(Busy, match="You already have 2 large photos in progress"):
            await lane.run("a", print)
        refused_in = time.monotonic() - start
        release.set()
        await asyncio.gather(*held)
        return refused_in

    assert asyncio.run(main()) < 0.5
    assert lane.held == 0


def test_a_free_worker_goes_to_the_sessions_in_turn():
    lane = Lane("test", workers=1)
    order: list[str] = []
    gate = threading.Event()

    def work(name: str) -> None:
        gate.wait(10)
        order.append(name)

    async def main():
        tasks = [asyncio.create_task(lane.run("many", work, f"many{i}")) for i in range(4)]
        await asyncio.sleep(0.05)
        tasks.append(asyncio.create_task(lane.run("one", work, "one")))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    # "many" had four waiting before "one" came; "one" gets the next turn after the running one, not the fifth.
    assert order == ["many0", "many1", "one", "many2", "many3"]


def test_context_variables_and_errors_cross_to_the_worker():
    lane = Lane("test", workers=2)
    name = contextvars.ContextVar("name")

    def read() -> str:
        return name.get()

    def fail() -> None:
        raise ValueError("the worker's message")

    async def main():
        name.set("this request")
        assert await lane.run("s", read) == "this request"
        with pytest.raises(ValueError, match="the worker's message"):
            await lane.run("s", fail)

    asyncio.run(main())
    assert lane.held == 0


def test_a_request_that_stops_waiting_gives_its_place_back_and_running_work_keeps_its_worker():
    lane = Lane("test", workers=1, capacity=2)
    release = threading.Event()

    async def main():
        running = asyncio.create_task(lane.run("a", release.wait, 10))
        waiting = asyncio.create_task(lane.run("b", release.wait, 10))
        await asyncio.sleep(0.05)
        waiting.cancel()  # e.g. the client closed its connection
        running.cancel()  # its work goes on in the thread and holds the worker until it ends
        await asyncio.sleep(0.05)
        assert lane.held == 1
        late = asyncio.create_task(lane.run("c", lambda: "served"))
        await asyncio.sleep(0.05)
        assert not late.done()  # the worker is still busy with the cancelled request's work
        release.set()
        return await late

    assert asyncio.run(main()) == "served"
    assert lane.held == 0


def test_lane_settings_are_checked():
    with pytest.raises(ValueError, match="capacity >= workers"):
        Lane("bad", workers=2, capacity=1)
