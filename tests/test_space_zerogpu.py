"""The ZeroGPU Space bundle (release/space.py --zerogpu): what its front matter and pins say, and that its app works
when ZeroGPU calls it: every ``@spaces.GPU`` call in a forked worker, arguments and results pickled.

The app tests need the ``spaces`` package: in this environment, or in the one whose python
``COLORIZATION_SPACE_PYTHON`` names (e.g. a Python 3.12 venv made from the bundle's requirements.txt plus spaces).
``COLORIZATION_PYTHON312`` (a Python 3.12 interpreter) runs the whole check from nothing: a fresh venv with only the
bundle's requirements plus spaces, as a free account's ZeroGPU Space installs it (several GB, a few minutes).
"""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_server import REPO

SPACE = runpy.run_path(str(REPO / "release" / "space.py"))  # release/ holds scripts, not a package
PHOTO = "examples/chelsea_bw.jpg"


def _front_matter(readme: Path) -> dict[str, str]:
    block = re.match(r"---\n(.*?\n)---\n", readme.read_text(), re.S).group(1)
    return dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)


def _pins(requirements: Path) -> dict[str, str]:
    return dict(line.split("==") for line in requirements.read_text().splitlines() if "==" in line)


def test_the_zerogpu_bundle_says_python_312_and_pins_a_torch_zerogpu_runs(tmp_path):
    zerogpu = {str(p) for p, _ in SPACE["build"](tmp_path / "zerogpu", "zerogpu")}
    cpu = {str(p) for p, _ in SPACE["build"](tmp_path / "cpu", "cpu")}
    assert zerogpu == cpu, "the two routes ship the same files"
    meta, cpu_meta = _front_matter(tmp_path / "zerogpu" / "README.md"), _front_matter(tmp_path / "cpu" / "README.md")
    assert meta["python_version"] == '"3.12"' and meta["suggested_hardware"] == "zero-a10g"
    assert cpu_meta == _front_matter(REPO / "README.md"), "the CPU route keeps the repository's front matter"
    assert cpu_meta["suggested_hardware"] == "cpu-basic"
    assert {k: v for k, v in meta.items() if k not in SPACE["FRONT_MATTER"]["zerogpu"]} == \
        {k: v for k, v in cpu_meta.items() if k not in SPACE["FRONT_MATTER"]["zerogpu"]}
    pins, cpu_pins = _pins(tmp_path / "zerogpu" / "requirements.txt"), _pins(tmp_path / "cpu" / "requirements.txt")
    major, minor = (int(n) for n in pins["torch"].split(".")[:2])
    assert major == 2 and 8 <= minor <= 11, f"ZeroGPU runs torch 2.8 to 2.11, the bundle pins {pins['torch']}"
    assert pins["torchvision"].startswith(SPACE["TORCHVISION_FOR_TORCH"][f"{major}.{minor}"] + ".")
    assert meta["sdk_version"] == pins["gradio"], "the Space runs the gradio the app was tested with"
    assert {k: v for k, v in pins.items() if not k.startswith("torch")} == \
        {k: v for k, v in cpu_pins.items() if not k.startswith("torch")}, "only torch and torchvision differ"
    assert "spaces" not in pins, "ZeroGPU brings its own spaces package"


@pytest.mark.parametrize("route", ["zerogpu", "cpu"])
def test_push_creates_the_space_on_its_route_s_hardware_and_uploads_the_folder(tmp_path, monkeypatch, route):
    """What --push asks of huggingface_hub (recorded here; nothing is sent)."""
    import huggingface_hub

    asked = []

    class Recorder:
        def __init__(self, token):
            asked.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            asked.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            asked.append(("upload_folder", kwargs))
            return "uploaded"

    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert SPACE["push"](tmp_path, "you/colorize", route) == "uploaded"
    (_, token), (_, repo_id, create), (_, upload) = asked
    assert token == "hf_test" and repo_id == "you/colorize"
    assert create["space_hardware"] == {"zerogpu": "zero-a10g", "cpu": "cpu-basic"}[route]
    assert create["space_sdk"] == "gradio" and create["repo_type"] == "space" and create["exist_ok"]
    assert upload["folder_path"] == str(tmp_path) and upload["repo_id"] == "you/colorize"
    assert upload["repo_type"] == "space"


def _space_python() -> str:
    """A python whose environment has the bundle's requirements and spaces, or skip."""
    python = os.environ.get("COLORIZATION_SPACE_PYTHON")
    if python:
        return python
    if importlib.util.find_spec("spaces") is None:
        pytest.skip("needs the spaces package here (requirements-dev.txt) or COLORIZATION_SPACE_PYTHON")
    return sys.executable


def _clip(path: Path, source: Path, frames: int = 40) -> Path:
    """A short H.264 clip of ``source`` sliding right."""
    import av
    import numpy as np

    photo = np.asarray(Image.open(source).convert("RGB").resize((320, 192)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(frames):
            frame = np.ascontiguousarray(photo[20:116, 2 * i : 2 * i + 160])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def _exercise(client: Client, bundle: Path, tmp_path: Path) -> dict:
    """A photo, a clip (counting its progress updates), two photos at once, a comparison and a file that is
    not a video, through the API."""
    (_, _), png, note = client.predict(handle_file(str(bundle / PHOTO)), api_name="/colorize")
    job = client.submit(handle_file(str(_clip(tmp_path / "slide.mp4", bundle / "examples" / "coffee.jpg"))),
                        api_name="/colorize_clip")
    updates = set()
    while not job.done():
        updates.update((unit.index, unit.length) for unit in job.status().progress_data or [])
        time.sleep(0.05)
    _, clip_note = job.result()
    archive, batch_note = client.predict([handle_file(str(bundle / PHOTO)), handle_file(str(bundle / "examples" /
                                          "rocket_bw.jpg"))], api_name="/colorize_batch")
    with zipfile.ZipFile(archive) as zipped:
        batch = sorted(zipped.namelist())
    gallery, _ = client.predict(handle_file(str(bundle / PHOTO)), api_name="/compare")
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 100)
    with pytest.raises(Exception) as refused:
        client.predict(handle_file(str(fake)), api_name="/colorize_clip")
    return {"png": Image.open(png).convert("RGB"), "note": note, "updates": len(updates), "clip_note": clip_note,
            "batch": batch, "batch_note": batch_note, "compared": len(gallery), "refusal": str(refused.value)}


def _clean_env(python: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "COLORIZATION", "PYTHON"))}
    if "PYTHONPATH" in os.environ and python == sys.executable:  # spaces may be on it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def check_zerogpu_app(bundle: Path, python: str, tmp_path: Path) -> dict:
    """Serve the bundle plainly (spaces installed, no ZeroGPU: effect-free) and as ZeroGPU calls it, exercise both,
    and check the ZeroGPU route against the plain one; returns what was measured."""
    env = _clean_env(python)
    (tmp_path / "plain").mkdir()
    (tmp_path / "zerogpu").mkdir()
    start = time.perf_counter()
    with SPACE["serving"](bundle, python, env=env) as (url, _, _):
        plain = _exercise(Client(url, verbose=False, download_files=str(tmp_path / "plain")), bundle,
                          tmp_path / "plain")
    plain_s = time.perf_counter() - start
    with SPACE["serving"](bundle, python, emulate_zerogpu=True, env=env) as (url, proc, log):
        zerogpu = _exercise(Client(url, verbose=False, download_files=str(tmp_path / "zerogpu")), bundle,
                            tmp_path / "zerogpu")
        calls = SPACE["gpu_calls"](log)
    asked = [call["duration_s"] for call in calls if "duration_s" in call]
    workers = {call["worker_pid"] for call in calls if "worker_pid" in call}
    # Each GPU call went to a forked worker, with a duration of its own under ZeroGPU's default minute.
    assert len(asked) >= 5 and workers and proc.pid not in workers, calls
    assert all(seconds is not None and 0 < seconds < 60 for seconds in asked), f"durations asked: {asked}"
    # The work and its result crossed the process boundary unchanged: the same pixels as the plain route.
    assert zerogpu["png"].size == Image.open(bundle / PHOTO).size
    assert zerogpu["png"].tobytes() == plain["png"].tobytes() and "Colorized with" in zerogpu["note"]
    # The clip's progress reached the page from the worker, and its note is the plain route's.
    assert zerogpu["updates"] > 0 and plain["updates"] > 0, (zerogpu["updates"], plain["updates"])
    assert zerogpu["clip_note"].split(" in ")[0] == plain["clip_note"].split(" in ")[0]
    # Many photos and the comparison come back as they do plainly.
    assert zerogpu["batch"] == plain["batch"] and len(zerogpu["batch"]) == 2 and "2 photos" in zerogpu["batch_note"]
    assert zerogpu["compared"] == plain["compared"] >= len(SPACE["offered_weights"]())
    # A refusal raised inside the GPU call reaches the user as its message, not as "ZeroGPU worker error".
    assert "fake.mp4" in zerogpu["refusal"] and zerogpu["refusal"] == plain["refusal"], zerogpu["refusal"]
    return {"plain_s": plain_s, "asked": asked, "workers": len(workers)}


def test_the_app_works_as_zerogpu_calls_it(tmp_path):
    """The bundle's app served through the real spaces package's ZeroGPU path (forked workers, pickled calls; its
    CUDA layer left out) against the same app served plainly."""
    python = _space_python()
    bundle = tmp_path / "space"
    SPACE["build"](bundle, "zerogpu")
    check_zerogpu_app(bundle, python, tmp_path)


@pytest.mark.skipif(not os.environ.get("COLORIZATION_PYTHON312"), reason="COLORIZATION_PYTHON312 names no Python 3.12")
def test_a_fresh_python_312_venv_from_the_bundle_runs_the_app(tmp_path):
    """What a free account's ZeroGPU Space does, less the GPU: a fresh Python 3.12 venv with only the bundle's
    requirements plus spaces, then the app served plainly and as ZeroGPU calls it."""
    bundle = tmp_path / "space"
    SPACE["build"](bundle, "zerogpu")
    venv = tmp_path / "venv"
    subprocess.run([os.environ["COLORIZATION_PYTHON312"], "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert version == "(3, 12)", version
    start = time.perf_counter()
    install = subprocess.run([python, "-m", "pip", "install", "-q", "-r", str(bundle / "requirements.txt"), "spaces"],
                             capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    installed = time.perf_counter() - start
    torch = subprocess.run([python, "-c", "import torch, torchvision; print(torch.__version__, torchvision.__version__)"],
                           capture_output=True, text=True, check=True).stdout.split()
    pins = _pins(bundle / "requirements.txt")
    assert [v.split("+")[0] for v in torch] == [pins["torch"], pins["torchvision"]]
    report = check_zerogpu_app(bundle, python, tmp_path)
    print(f"install {installed:.0f} s; {report}")
