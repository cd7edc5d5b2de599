"""Assemble exactly what a Hugging Face Space runs, and optionally upload it.

    python release/space.py build/space                      # assemble and list, nothing leaves the machine
    python release/space.py build/space --push user/colorize # then upload (token from $HF_TOKEN)
    python release/space.py build/space --measure venv/bin/python   # cold start and peak memory, as on a Space
    python release/space.py build/zerogpu --zerogpu          # the same for ZeroGPU: Python 3.12, its torch pin
    python release/space.py build/zerogpu --zerogpu --measure venv312/bin/python --emulate-zerogpu
    python release/space.py build/static --static            # the static page (web/): ONNX in the browser, no server

The folder holds app.py, the part of the package the app imports, the weights the app offers, the
examples with their attribution, the app's own requirements.txt and the README with its front matter.
``huggingface_hub.upload_folder`` stores large files the way the Hub wants, whatever git's history holds.

Two routes: CPU hardware (``cpu-basic``, the repository's own front matter and pins; a paid plan creates such a
Space) and ZeroGPU (``--zerogpu``: a free account's route; the front matter says Python 3.12 and ``zero-a10g``, and
torch and torchvision are pinned to a pair ZeroGPU runs). ``--emulate-zerogpu`` serves the bundle the way ZeroGPU
calls it, less the GPU (:func:`serve_emulated_zerogpu`).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

HOME = Path(__file__).resolve().parents[1]  # the checkout this script ships
PACKAGE = "colorization"
# Spaces refuse a file over 10 MiB that is not stored with LFS/Xet; a plain git push of the repository
# must never need that (tests/test_release.py checks every tracked file against this).
SPACE_FILE_LIMIT = 10 * 1024 * 1024
# requirements.txt lists the app's needs first; what follows this line serves only the notebooks and training.
RUNTIME_END = "# --- the notebooks and training"
# ZeroGPU runs Python 3.12 (or 3.10) and torch 2.8 to 2.11 (the issue quotes hub-docs' spaces-zerogpu page of July
# 2026), so its bundle pins a torch in that range with the torchvision built for it (torchvision 0.26.0's wheel
# requires torch==2.11.0). PyPI's Linux wheel of this torch is the CUDA build a ZeroGPU worker needs.
ZEROGPU_PINS = {"torch": "2.11.0", "torchvision": "0.26.0"}
TORCHVISION_FOR_TORCH = {"2.8": "0.23", "2.9": "0.24", "2.10": "0.25", "2.11": "0.26"}  # the releases that pair
# The front matter each route's bundle carries (huggingface_hub's SpaceHardware names the flavours).
FRONT_MATTER = {"cpu": {}, "zerogpu": {"python_version": '"3.12"', "suggested_hardware": "zero-a10g",
                                       "short_description": "Colorize black-and-white photos at full resolution"}}
HARDWARE = {"cpu": "cpu-basic", "zerogpu": "zero-a10g"}


def _package_imports(path: Path) -> set[str]:
    """Modules of the package that a file imports, at any depth of its code (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.add(node.module.split(".")[0] if node.module else "")
                found.update(alias.name for alias in node.names if not node.module)
            elif node.module and node.module.split(".")[0] == PACKAGE:
                parts = node.module.split(".")
                found.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] if "." in a.name else "__init__"
                         for a in node.names if a.name.split(".")[0] == PACKAGE)
    return {m or "__init__" for m in found}


def app_modules() -> list[str]:
    """The package's modules that app.py needs, following imports from module to module."""
    todo, needed = _package_imports(HOME / "app.py") | {"__init__"}, set()
    while todo:
        module = todo.pop()
        if module in needed or not (HOME / PACKAGE / f"{module}.py").is_file():
            continue
        needed.add(module)
        todo |= _package_imports(HOME / PACKAGE / f"{module}.py")
    return sorted(needed)


def offered_weights() -> list[Path]:
    """The weights files the app offers: every one in weights/ (the app lists the folder)."""
    return sorted((HOME / "weights").glob("*.safetensors"))


def runtime_requirements(pins: dict[str, str] | None = None) -> str:
    """requirements.txt up to the notebooks' part: what the app needs, with the same pins, except the packages
    ``pins`` names (name -> version), which must each have a pinned line there."""
    text = (HOME / "requirements.txt").read_text()
    if RUNTIME_END not in text:
        raise SystemExit(f"requirements.txt has no line starting {RUNTIME_END!r} to end the app's part")
    text = text[: text.index(RUNTIME_END)].rstrip() + "\n"
    for name, version in (pins or {}).items():
        text, found = re.subn(rf"^{re.escape(name)}==\S+$", f"{name}=={version}", text, flags=re.M)
        if found != 1:
            raise SystemExit(f"requirements.txt's app part has no single '{name}==' line to pin to {version}")
    return text


def front_matter(readme: str, fields: dict[str, str]) -> str:
    """``readme`` with the values of ``fields`` in its Space front matter (each key must already be there)."""
    match = re.match(r"---\n(.*?\n)---\n", readme, re.S)
    if not match or not re.search(r"^sdk: gradio$", match.group(1), re.M):
        raise SystemExit("README.md has no Space front matter (sdk: gradio)")
    block = match.group(1)
    for key, value in fields.items():
        block, found = re.subn(rf"^{key}:.*$", f"{key}: {value}", block, flags=re.M)
        if found != 1:
            raise SystemExit(f"README.md's front matter has no single {key!r} line")
    return f"---\n{block}---\n" + readme[match.end():]


def build(out: Path, route: str = "cpu") -> list[tuple[Path, int]]:
    """Write the Space's files for ``route`` ("cpu" or "zerogpu") into ``out`` (emptied first); returns (relative
    path, bytes) for each."""
    if route not in HARDWARE:
        raise ValueError(f"route must be one of {sorted(HARDWARE)}, got {route!r}")
    if out.exists():
        if not (out / "app.py").is_file() and any(out.iterdir()):
            raise SystemExit(f"{out} exists and does not look like a Space bundle: refusing to empty it")
        shutil.rmtree(out)
    (out / PACKAGE).mkdir(parents=True)
    (out / "weights").mkdir()
    (out / "examples").mkdir()
    copies = [HOME / "app.py", HOME / "README.md", HOME / "LICENSE"]
    copies += [HOME / PACKAGE / f"{m}.py" for m in app_modules()]
    copies += offered_weights()
    copies += sorted((HOME / "examples").glob("*.jpg")) + [HOME / "examples" / "ATTRIBUTION.md"]
    for source in copies:
        shutil.copy2(source, out / source.relative_to(HOME))
    readme = out / "README.md"
    readme.write_text(front_matter(readme.read_text(), FRONT_MATTER[route]))
    (out / "requirements.txt").write_text(runtime_requirements(ZEROGPU_PINS if route == "zerogpu" else None))
    files = sorted((p.relative_to(out), p.stat().st_size) for p in out.rglob("*") if p.is_file())
    too_big = [f"{p} ({size:,} bytes)" for p, size in files if size > SPACE_FILE_LIMIT]
    if too_big:
        raise SystemExit("over the Space's 10 MiB limit for files without LFS: " + ", ".join(too_big))
    return files


def push(out: Path, repo_id: str, route: str = "cpu") -> str:
    """Upload the folder to the Space ``repo_id`` with huggingface_hub (token from $HF_TOKEN); a new Space is created
    on the route's hardware (an existing one keeps the hardware its settings say)."""
    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN")
    if not token:
        raise SystemExit("set HF_TOKEN to a Hugging Face token with write access to push")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", space_hardware=HARDWARE[route], exist_ok=True)
    info = api.upload_folder(folder_path=str(out), repo_id=repo_id, repo_type="space",
                             commit_message="Deploy the colorization demo", delete_patterns=["*"])
    return str(info)


@contextlib.contextmanager
def serving(out: Path, python: str, emulate_zerogpu: bool = False, env: dict | None = None,
            timeout: float = 300.0) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """Serve the bundle in ``out`` with ``python`` (an environment made from its requirements.txt) on a free loopback
    port, from inside the bundle as a Space runs it, and yield (URL, server process, its log) once the page answers;
    with ``emulate_zerogpu`` the app is served by :func:`serve_emulated_zerogpu`. ``env``: the environment (default:
    this one less Python's and the project's variables), made offline."""
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "COLORIZATION"))}
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    command = ([python, str(Path(__file__).resolve()), str(out.resolve()), "--serve-emulated-zerogpu"]
               if emulate_zerogpu else [python, "app.py"])
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        log_path = Path(scratch) / "app.log"
        with open(log_path, "w") as log:
            # A session of its own: ZeroGPU's forked workers outlive the server unless the whole group is stopped.
            proc = subprocess.Popen(command, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url + "/", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the app did not answer on {url} within {timeout:.0f} s")
                time.sleep(0.5)
            yield url, proc, log_path
        finally:
            stop_group(proc)


def stop_group(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop ``proc`` (started with ``start_new_session``) and every process it left in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):  # forked workers the server did not stop, or a server that hung
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def gpu_calls(log: Path) -> list[dict]:
    """The GPU calls an emulated ZeroGPU server granted, in order, from its log: the seconds each asked for
    (``durationSeconds``; None: ZeroGPU's default of 60) and the process that ran it."""
    calls = []
    for line in log.read_text().splitlines():
        if line.startswith(ZEROGPU_LOG):
            calls.append(json.loads(line[len(ZEROGPU_LOG):]))
    return calls


def measure(out: Path, python: str, emulate_zerogpu: bool = False, repeats: int = 3) -> dict:
    """Start the bundle's app with ``python`` as a Space would; time it from launch to the first colorized photo
    (the page answering, then the example colorized), then the same photo ``repeats`` times more (the median),
    colorize once with every offered model, and read the server's peak resident memory (Linux's VmHWM; under
    ZeroGPU the work runs in forked workers, which this does not count)."""
    from gradio_client import Client, handle_file

    photo = out / "examples" / "chelsea_bw.jpg"
    start = time.perf_counter()
    with serving(out, python, emulate_zerogpu) as (url, proc, log):
        client = Client(url, verbose=False, download_files=False)
        client.predict(handle_file(str(photo)), api_name="/colorize")
        cold_start = time.perf_counter() - start
        seconds = []
        for _ in range(repeats):
            begin = time.perf_counter()
            client.predict(handle_file(str(photo)), api_name="/colorize")
            seconds.append(time.perf_counter() - begin)
        for weights in offered_weights():
            client.predict(handle_file(str(photo)), weights.name, api_name="/colorize")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM:"))) / 1024
        calls = gpu_calls(log) if emulate_zerogpu else []
    return {"cold_start_s": cold_start, "colorize_s": sorted(seconds)[len(seconds) // 2], "peak_mb": peak,
            "models": len(offered_weights()), "gpu_calls": calls}


ZEROGPU_LOG = "ZEROGPU-EMULATED "  # how serve_emulated_zerogpu logs each GPU call it grants


def serve_emulated_zerogpu(bundle: Path) -> None:
    """Serve the bundle's app as a ZeroGPU Space calls it, less the GPU: the real ``spaces`` package (installed in
    this environment) with ``SPACES_ZERO_GPU`` set runs each ``@spaces.GPU`` call in a worker process forked from
    the server, sending it the call's arguments and Gradio context and sending back its result, its exceptions and
    its progress, all pickled; here it asks a local stand-in for ZeroGPU's scheduler, which grants every call and
    logs it (:func:`gpu_calls`), and its CUDA layer (emulated CUDA in the server, the weights moved to the GPU in
    the worker) is left out, as this machine has no GPU. What it catches: arguments or results that do not pickle
    (a closure), errors whose message does not survive the trip, progress that does not reach the page, and the
    duration each call asks for."""
    import http.server
    import threading
    import types
    import urllib.parse
    import uuid

    class Scheduler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            body = b""
            if url.path == "/schedule":
                seconds = query.get("durationSeconds")
                print(ZEROGPU_LOG + json.dumps({"task": int(query["taskId"]), "duration_s": seconds and
                                                int(seconds)}), flush=True)
                body = json.dumps({"idle": True, "nvidiaIndex": 0, "nvidiaUUID": "emulated",
                                   "allowToken": uuid.uuid4().hex}).encode()
            elif url.path == "/allow":
                print(ZEROGPU_LOG + json.dumps({"worker_pid": int(query["pid"]), "server_pid": os.getpid()}),
                      flush=True)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    scheduler = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scheduler)
    threading.Thread(target=scheduler.serve_forever, daemon=True).start()
    cgroup = Path(tempfile.mkdtemp()) / "cgroup"
    cgroup.write_text("0::/emulated\n")
    os.environ.update(SPACES_ZERO_GPU="true", ZEROGPU_PROC_SELF_CGROUP_PATH=str(cgroup),
                      SPACES_ZERO_DEVICE_API_URL=f"http://127.0.0.1:{scheduler.server_address[1]}")
    no_cuda = types.ModuleType("spaces.zero.torch")  # what spaces.zero.torch offers, as no-ops
    for name in ("enter_mode", "patch", "unpatch", "init", "move"):
        setattr(no_cuda, name, lambda *args, **kwargs: None)
    no_cuda.pack = no_cuda.size = lambda *args, **kwargs: 0
    no_cuda.is_in_bad_fork = lambda: False
    sys.modules["spaces.zero.torch"] = no_cuda
    os.chdir(bundle)
    sys.path.insert(0, str(bundle))
    sys.argv = ["app.py"]
    runpy.run_path("app.py", run_name="__main__")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to assemble the Space in (emptied first)")
    parser.add_argument("--zerogpu", action="store_true", help="the ZeroGPU route (a free account's): Python 3.12, "
                        f"torch {ZEROGPU_PINS['torch']}, hardware zero-a10g; without it, CPU basic")
    parser.add_argument("--push", metavar="REPO_ID", help="upload to this Space, e.g. user/colorize")
    parser.add_argument("--measure", metavar="PYTHON", help="the python of an environment made from the bundle's "
                        "requirements.txt: time the app's cold start and a photo, and read its peak memory with "
                        "every model loaded")
    parser.add_argument("--emulate-zerogpu", action="store_true", help="with --measure: serve the app as ZeroGPU "
                        "calls it, less the GPU (the environment needs the spaces package)")
    parser.add_argument("--serve-emulated-zerogpu", action="store_true", help="serve the bundle already in OUT "
                        "that way (what --emulate-zerogpu runs, with the environment's python)")
    parser.add_argument("--static", action="store_true",
                        help="assemble the static page instead (release/static_space.py): no server, ONNX in the browser")
    args = parser.parse_args(argv)
    if args.static:
        return runpy.run_path(str(HOME / "release" / "static_space.py"))["main"]([str(args.out)])
    if args.serve_emulated_zerogpu:
        serve_emulated_zerogpu(args.out.resolve())
        return 0
    route = "zerogpu" if args.zerogpu else "cpu"
    files = build(args.out, route)
    width = max(len(str(p)) for p, _ in files)
    for path, size in files:
        print(f"{str(path):{width}}  {size:>12,}")
    print(f"{len(files)} files, {sum(s for _, s in files):,} bytes in {args.out} ({route} route, "
          f"hardware {HARDWARE[route]})")
    if args.measure:
        report = measure(args.out, args.measure, args.emulate_zerogpu)
        print(f"cold start (launch to the first photo colorized): {report['cold_start_s']:.1f} s; a photo again "
              f"(examples/chelsea_bw.jpg, median of 3): {report['colorize_s']:.2f} s; peak memory of "
              f"the server with all {report['models']} models loaded and used: {report['peak_mb']:.0f} MB")
        if args.emulate_zerogpu:
            asked = [c["duration_s"] for c in report["gpu_calls"] if "duration_s" in c]
            workers = {c["worker_pid"] for c in report["gpu_calls"] if "worker_pid" in c}
            print(f"emulated ZeroGPU: {len(asked)} GPU calls, asking for {sorted(set(asked), key=str)} s "
                  f"(None: the default 60), run in {len(workers)} forked worker(s)")
    if args.push:
        print(push(args.out, args.push, route))
    return 0


if __name__ == "__main__":
    sys.exit(main())
