"""The demo's lanes under load, through a real server with small limits set by environment (issue 26)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_server import EXAMPLES, running_app

META = {"_type": "gradio.FileData"}
# Small limits, so that a few dozen requests fill the lanes: photos over 0.3 MP take the big lane, which holds 2.
LIMITS = {"COLORIZE_BIG_MEGAPIXELS": "0.3", "COLORIZE_BIG_QUEUE": "2", "COLORIZE_QUEUE_SIZE": "16"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    temp_dir = tmp_path_factory.mktemp("gradio-lanes")
    with running_app(temp_dir, env={**os.environ, **LIMITS}) as url:
        yield url, temp_dir


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    big, small = folder / "big.jpg", folder / "small.png"
    Image.open(EXAMPLES / "coffee.jpg").convert("RGB").resize((1200, 900)).save(big, quality=90)  # 1.08 MP colour
    Image.open(EXAMPLES / "camera_bw.jpg").convert("L").resize((64, 64)).save(small)
    return {"big": big, "small": small}


def _upload(http: httpx.Client, file: Path) -> str:
    return http.post("/gradio_api/upload", files={"files": (file.name, file.read_bytes())}).json()[0]


def _outcome(http: httpx.Client, api_name: str, event_id: str, timeout: float) -> tuple[str, object]:
    """("complete", outputs) or ("error", message) of an event sent to /gradio_api/call/."""
    text = http.get(f"/gradio_api/call/{api_name}/{event_id}", timeout=timeout).text
    kind = re.findall(r"^event: (\w+)", text, re.M)[-1]
    return kind, json.loads(re.findall(r"^data: (.*)$", text, re.M)[-1])


def test_queued_big_photos_hold_no_thread_and_the_queue_admits_what_the_lanes_hold(server, photos):
    # Issue 26: 45 accepted 8 MP photos made a small gray photo wait 25 s and /gradio_api/info time out: each
    # request waiting for the big lane held one of Gradio's 40 threads, and the queue let 64 through. Here 80 big
    # photos (each its own session) are sent at once; a small photo, the page and the API's description still
    # answer at once.
    url = server[0]
    with httpx.Client(base_url=url, timeout=60) as http:
        path = _upload(http, photos["big"])
        posted = [http.post("/gradio_api/call/colorize",
                            json={"data": [{"path": path, "meta": META}, "cnn.safetensors", 512, 1.0, None]})
                  for _ in range(80)]
        time.sleep(1.0)  # the big photos are in the lanes and in the queue
        answers = {}
        for route in ("/", "/gradio_api/info"):
            start = time.monotonic()
            answers[route] = http.get(route, timeout=60).status_code, time.monotonic() - start
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        start = time.monotonic()
        job = client.submit(handle_file(str(photos["small"])), api_name="/colorize")
        try:
            job.result(timeout=60)
        finally:
            small_s = time.monotonic() - start
        assert all(status == 200 and seconds < 5 for status, seconds in answers.values()), answers
        assert small_s < 5, f"the small photo took {small_s:.1f} s"
        # What the lanes cannot hold is refused at once, by the full queue (503) or the full lane, in one sentence.
        accepted = [r.json()["event_id"] for r in posted if r.status_code == 200]
        assert all(r.status_code == 503 and "Queue is full" in r.text for r in posted if r.status_code != 200)
        outcomes = [_outcome(http, "colorize", event, timeout=120) for event in accepted]
    done = [data for kind, data in outcomes if kind == "complete"]
    refused = [data for kind, data in outcomes if kind == "error"]
    assert len(done) >= 2 and len(refused) >= 30 and len(done) + len(refused) == len(accepted)
    assert all("busy with large photos" in str(message) for message in refused), refused[:3]
