"""Assemble the static page (web/) as a Hugging Face static Space: no server, the visitor's browser colorizes.

    python release/static_space.py build/static-space      # export, install, assemble and list; nothing leaves

The folder holds index.html with its script and style, ONNX Runtime Web (vendor/, from the npm lock file, its
WebAssembly in parts), the exported graphs (models/) and a README whose front matter says ``sdk: static``.
Upload it with ``huggingface-cli upload USER/SPACE build/static-space . --repo-type space`` (a new Space made
with the "Static" SDK) or any file host: every file is under 10 MiB, so a plain git push takes it too.
"""

from __future__ import annotations

import argparse
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

HOME = Path(__file__).resolve().parents[1]
WEB = HOME / "web"
FILE_LIMIT = 10 * 1024 * 1024  # a Space refuses a plain file over 10 MiB (without LFS/Xet)
TOTAL_LIMIT = 40 * 1000 * 1000  # the page's whole download, kept small enough for a phone
PAGE = ["index.html", "app.js", "style.css"]
FRONT_MATTER = """---
title: Colorize in your browser
emoji: 🎨
colorFrom: gray
colorTo: yellow
sdk: static
app_file: index.html
pinned: false
license: mit
---
"""


def _readme(manifest: dict) -> str:
    return FRONT_MATTER + f"""
# Colorize a black-and-white photo in your browser

This Space has no server: the page runs the colorization network ({manifest['title']}, from
`{manifest['weights']}`, render size {manifest['render_size']}) with ONNX Runtime Web in your own browser, so your
photo is never uploaded. It is the project's Python pipeline step for step (exported by `release/export_onnx.py`):
L of the photo, the network on a copy whose short side is the render size, ab upsampled bilinearly onto the
photo's full-resolution L, and the same fit to the sRGB gamut.
"""


def _ensure_built() -> dict:
    """The graphs exported (skipped when current) and ONNX Runtime Web installed from the lock file (when missing)."""
    manifest = runpy.run_path(str(HOME / "release" / "export_onnx.py"))["export"]()
    wasm = WEB / "vendor" / "wasm.json"
    if not wasm.is_file() or wasm.stat().st_mtime < (WEB / "package-lock.json").stat().st_mtime:
        subprocess.run([str(WEB / "install.sh")], check=True)
    return manifest


def build(out: Path) -> list[tuple[Path, int]]:
    """Write the static Space's files into ``out`` (emptied first); returns (relative path, bytes) for each."""
    out = Path(out)
    if out.exists():
        if not (out / "index.html").is_file() and any(out.iterdir()):
            raise SystemExit(f"{out} exists and does not look like a static Space: refusing to empty it")
        shutil.rmtree(out)
    manifest = _ensure_built()
    (out / "models").mkdir(parents=True)
    for name in PAGE:
        shutil.copy2(WEB / name, out / name)
    shutil.copytree(WEB / "vendor", out / "vendor")
    for name in [*manifest["graphs"].values(), "manifest.json"]:
        shutil.copy2(WEB / "models" / name, out / "models" / name)
    shutil.copy2(HOME / "LICENSE", out / "LICENSE")
    (out / "README.md").write_text(_readme(manifest))
    files = sorted((p.relative_to(out), p.stat().st_size) for p in out.rglob("*") if p.is_file())
    too_big = [f"{p} ({size:,} bytes)" for p, size in files if size > FILE_LIMIT]
    if too_big:
        raise SystemExit("over a Space's 10 MiB limit for a plain file: " + ", ".join(too_big))
    total = sum(size for _, size in files)
    if total > TOTAL_LIMIT:
        raise SystemExit(f"the page is {total:,} bytes in all, over {TOTAL_LIMIT:,}")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to assemble the static Space in (emptied first)")
    args = parser.parse_args(argv)
    files = build(args.out)
    width = max(len(str(p)) for p, _ in files)
    for path, size in files:
        print(f"{str(path):{width}}  {size:>12,}")
    print(f"{len(files)} files, {sum(s for _, s in files):,} bytes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
