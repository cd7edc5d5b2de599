"""What ships: no file a plain git push carries is over a Space's limit, and the Space bundle runs on its own."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import venv

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_server import REPO, running_app

SPACE = runpy.run_path(str(REPO / "release" / "space.py"))  # release/ holds scripts, not a package


def test_no_tracked_file_is_over_the_space_limit():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    sizes = {name: (REPO / name).stat().st_size for name in names.decode().split("\0") if name and (REPO / name).is_file()}
    too_big = {name: size for name, size in sizes.items() if size > SPACE['SPACE_FILE_LIMIT']}
    assert not too_big, f"a Space refuses these without LFS: {too_big}"


def test_the_bundle_holds_what_the_app_needs_and_nothing_else(tmp_path):
    files = {str(path) for path, _ in SPACE['build'](tmp_path / "space")}
    assert {"app.py", "README.md", "requirements.txt", "examples/ATTRIBUTION.md", "colorization/pipeline.py",
            "weights/cnn.safetensors"} <= files
    assert not any(f.startswith(("tests/", "notebooks/", "bench/", "release/", "experiments/", "docs/")) for f in files)
    assert "colorization/train.py" not in files and "colorization/gan.py" not in files
    requirements = (tmp_path / "space" / "requirements.txt").read_text()
    assert "gradio==" in requirements and "pytest" not in requirements and "jupyter" not in requirements


def test_the_bundle_runs_alone_in_a_fresh_environment(tmp_path):
    """A new virtual environment from the bundle's own requirements.txt, the app started from inside the bundle
    (no repository, no ../shared): what catches a missing file, dependency or developer-only path."""
    bundle = tmp_path / "space"
    SPACE['build'](bundle)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                              str(bundle / "requirements.txt")], capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "COLORIZATION"))}
    clean_env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{clean_env.get('PATH', '')}"
    temp_dir = tmp_path / "gradio"
    temp_dir.mkdir()
    with running_app(temp_dir, app_dir=bundle, python=python, env=clean_env) as url:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp_path / "downloads"))
        photo = bundle / "examples" / "chelsea_bw.jpg"
        (_, shown), download, note = client.predict(handle_file(str(photo)), api_name="/colorize")
        assert Image.open(download).size == Image.open(photo).size and "Colorized with" in note
