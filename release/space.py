"""Assemble exactly what a Hugging Face Space runs, and optionally upload it.

    python release/space.py build/space                      # assemble and list, nothing leaves the machine
    python release/space.py build/space --push user/colorize # then upload (token from $HF_TOKEN)
    python release/space.py build/space --measure venv/bin/python   # cold start and peak memory, as on a Space

The folder holds app.py, the part of the package the app imports, the weights the app offers, the
examples with their attribution, the app's own requirements.txt and the README with its front matter.
``huggingface_hub.upload_folder`` stores large files the way the Hub wants, whatever git's history holds.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import sys
from pathlib import Path

HOME = Path(__file__).resolve().parents[1]  # the checkout this script ships
PACKAGE = "colorization"
# Spaces refuse a file over 10 MiB that is not stored with LFS/Xet; a plain git push of the repository
# must never need that (tests/test_release.py checks every tracked file against this).
SPACE_FILE_LIMIT = 10 * 1024 * 1024
# requirements.txt lists the app's needs first; what follows this line serves only the notebooks and training.
RUNTIME_END = "# --- the notebooks and training"


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


def runtime_requirements() -> str:
    """requirements.txt up to the notebooks' part: what the app needs, with the same pins."""
    text = (HOME / "requirements.txt").read_text()
    if RUNTIME_END not in text:
        raise SystemExit(f"requirements.txt has no line starting {RUNTIME_END!r} to end the app's part")
    return text[: text.index(RUNTIME_END)].rstrip() + "\n"


def build(out: Path) -> list[tuple[Path, int]]:
    """Write the Space's files into ``out`` (emptied first); returns (relative path, bytes) for each."""
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
    readme = (out / "README.md").read_text()
    if not re.match(r"---\n.*?\nsdk: gradio\n.*?---\n", readme, re.S):
        raise SystemExit("README.md has no Space front matter (sdk: gradio)")
    (out / "requirements.txt").write_text(runtime_requirements())
    files = sorted((p.relative_to(out), p.stat().st_size) for p in out.rglob("*") if p.is_file())
    too_big = [f"{p} ({size:,} bytes)" for p, size in files if size > SPACE_FILE_LIMIT]
    if too_big:
        raise SystemExit("over the Space's 10 MiB limit for files without LFS: " + ", ".join(too_big))
    return files


def push(out: Path, repo_id: str) -> str:
    """Upload the folder to the Space ``repo_id`` with huggingface_hub (token from $HF_TOKEN)."""
    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN")
    if not token:
        raise SystemExit("set HF_TOKEN to a Hugging Face token with write access to push")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True)
    info = api.upload_folder(folder_path=str(out), repo_id=repo_id, repo_type="space",
                             commit_message="Deploy the colorization demo", delete_patterns=["*"])
    return str(info)


def measure(out: Path, python: str) -> dict:
    """Start the bundle's app with ``python`` (an environment made from its requirements.txt) as a Space would,
    time it from launch to the first colorized photo, then colorize once with every offered model and read
    the server's peak resident memory (Linux's VmHWM)."""
    import socket
    import subprocess
    import tempfile
    import time

    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "COLORIZATION"))}
    env.update(GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1")
    photo = out / "examples" / "chelsea_bw.jpg"
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([python, "app.py"], cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"app.py exited with {proc.returncode}:\n{log.read()[-3000:]}")
                try:
                    client = Client(f"http://127.0.0.1:{port}", verbose=False, download_files=False)
                    client.predict(handle_file(str(photo)), api_name="/colorize")
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.5)
            cold_start = time.perf_counter() - start
            for weights in offered_weights():
                client.predict(handle_file(str(photo)), weights.name, api_name="/colorize")
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM:"))) / 1024
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"cold_start_s": cold_start, "peak_mb": peak, "models": len(offered_weights())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to assemble the Space in (emptied first)")
    parser.add_argument("--push", metavar="REPO_ID", help="upload to this Space, e.g. user/colorize")
    parser.add_argument("--measure", metavar="PYTHON", help="the python of an environment made from the bundle's "
                        "requirements.txt: time the app's cold start and read its peak memory with every model loaded")
    args = parser.parse_args(argv)
    files = build(args.out)
    width = max(len(str(p)) for p, _ in files)
    for path, size in files:
        print(f"{str(path):{width}}  {size:>12,}")
    print(f"{len(files)} files, {sum(s for _, s in files):,} bytes in {args.out}")
    if args.measure:
        report = measure(args.out, args.measure)
        print(f"cold start (launch to the first photo colorized): {report['cold_start_s']:.1f} s; peak memory with "
              f"all {report['models']} models loaded and used: {report['peak_mb']:.0f} MB")
    if args.push:
        print(push(args.out, args.push))
    return 0


if __name__ == "__main__":
    sys.exit(main())
