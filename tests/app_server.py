"""Start the real demo (``python app.py``) on a free loopback port, for test_app and test_browser."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

# The app under test and its examples: the one place the tests name the repository's layout.
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
# Nothing may reach the internet: no analytics, no Hub calls, no telemetry.
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(temp_dir: Path, timeout: float = 180.0, app_dir: Path = REPO, python: str = sys.executable,
                env: dict | None = None) -> Iterator[str]:
    """Yield the URL of ``app_dir/app.py`` served on 127.0.0.1 by ``python``, its temporary files in
    ``temp_dir``; stop it after."""
    port = free_port()
    env = {**(os.environ if env is None else env), **OFFLINE_ENV, "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_TEMP_DIR": str(temp_dir)}
    url = f"http://127.0.0.1:{port}"
    with open(temp_dir / "app.log", "w+") as log:
        proc = subprocess.Popen([python, "app.py"], cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read()[-3000:]}")
                try:
                    with urllib.request.urlopen(url + "/", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"app.py did not answer on {url} within {timeout:.0f} s")
                time.sleep(1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
