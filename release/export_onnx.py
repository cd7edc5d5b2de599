"""Export the default model and the pipeline's other steps to ONNX, for the static page in web/.

    python release/export_onnx.py                          # the default weights into web/models/
    python release/export_onnx.py --weights weights/gan.safetensors --out DIR

Writes one graph per step of :class:`colorization.Colorizer` (:mod:`colorization.onnx`) and ``manifest.json``
(the weights' name, title and render size, the graphs). The files are generated, never committed; an export
whose sources (the weights, the graphs' code) have not changed is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

HOME = Path(__file__).resolve().parents[1]
OUT = HOME / "web" / "models"
# A Space refuses a plain file over 10 MiB; the network's weights are kept in float16 (as its weights file) to fit.
FILE_LIMIT = 10 * 1024 * 1024
OPSET = 18
GRAPHS = {"lightness": "lightness.onnx", "area": "area_resize.onnx", "linear": "linear_resize.onnx",
          "network": "network.onnx", "display": "display.onnx"}


def _sources_digest(weights: Path) -> str:
    """What an export depends on: the weights' bytes, the code that builds the graphs, and torch's version."""
    import torch

    digest = hashlib.sha256(weights.read_bytes())
    for code in ("onnx.py", "color.py", "models.py"):
        digest.update((HOME / "colorization" / code).read_bytes())
    digest.update(Path(__file__).read_bytes() + torch.__version__.encode())
    return digest.hexdigest()


def _export(module, args: tuple, dynamic_shapes, input_names: list[str], output_names: list[str], path: Path,
            optimize: bool = True) -> None:
    import torch

    program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=dynamic_shapes, opset_version=OPSET,
                                input_names=input_names, output_names=output_names, verbose=False, optimize=optimize)
    program.save(str(path))


def _float16_initializers(path: Path) -> None:
    """Store each float32 weight that float16 holds exactly (all of them, for weights saved in float16) as float16,
    cast back to float32 when the session loads: half the file, the same numbers."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    casts = []
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values, equal_nan=True):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}__float16"))
        casts.append(helper.make_node("Cast", [init.name], [name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export(out: Path = OUT, weights: Path | None = None, force: bool = False) -> dict:
    """Write the graphs and manifest.json into ``out`` (default weights: the best shipped); returns the manifest.
    Skipped when ``out`` already holds an export of the same sources."""
    import torch
    from torch.export import Dim

    from colorization import load_colorizer
    from colorization.onnx import AreaResize, Display, Lightness, LinearResize, Network, static_same_padding
    from colorization.pipeline import MAX_ASPECT, default_weights

    weights = Path(weights) if weights is not None else default_weights()
    digest = _sources_digest(weights)
    manifest_path = out / "manifest.json"
    if not force and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("sources") == digest and all((out / f).is_file() for f in manifest["graphs"].values()):
            return manifest
    out.mkdir(parents=True, exist_ok=True)
    colorizer = load_colorizer(weights, device="cpu")
    model = colorizer.model.to(memory_format=torch.contiguous_format).float().eval()
    if model.stride != 32 or getattr(model, "hints", False):
        raise SystemExit(f"{weights.name}: the export takes a network of stride 32 without hint inputs")

    n, c, h, w = Dim("n", min=1), Dim("c", min=1), Dim("h", min=1), Dim("w", min=1)
    rows, cols = Dim("rows", min=1), Dim("cols", min=1)
    pixels = torch.randint(0, 256, (300, 4), dtype=torch.uint8)
    l_run = torch.rand(300) * 100
    start = time.perf_counter()
    _export(Lightness(), (pixels,), ({0: n},), ["rgba"], ["l"], out / GRAPHS["lightness"])
    size_shapes = ({0: c, 1: h, 2: w}, {0: rows}, {0: cols})
    _export(AreaResize(), (torch.rand(1, 300, 400), torch.zeros(75), torch.zeros(100)), size_shapes,
            ["x", "rows", "cols"], ["y"], out / GRAPHS["area"])
    _export(LinearResize(), (torch.rand(2, 96, 128), torch.zeros(300), torch.zeros(400)), size_shapes,
            ["x", "rows", "cols"], ["y"], out / GRAPHS["linear"])
    rows_k, cols_k = Dim("rows_k", min=1, max=1024), Dim("cols_k", min=1, max=1024)  # padded sides: 32 k
    with static_same_padding():
        _export(Network(model), (torch.rand(1, 1, 128, 171) * 100, torch.zeros(128), torch.zeros(192)),
                ({2: h, 3: w}, {0: 32 * rows_k}, {0: 32 * cols_k}), ["l", "rows", "cols"], ["ab"],
                out / GRAPHS["network"], optimize=False)  # unoptimized, batch norms are not folded into the weights
    _float16_initializers(out / GRAPHS["network"])
    _export(Display(), (l_run, torch.randn(300) * 60, torch.randn(300) * 60, pixels), ({0: n},) * 4,
            ["l", "a", "b", "rgba"], ["rgba_out"], out / GRAPHS["display"])
    sizes = {name: (out / file).stat().st_size for name, file in GRAPHS.items()}
    too_big = {name: size for name, size in sizes.items() if size > FILE_LIMIT}
    if too_big:
        raise SystemExit(f"over a Space's 10 MiB limit for a plain file: {too_big}")
    manifest = {
        "weights": weights.name,
        "title": colorizer.title,
        "render_size": colorizer.render_size,
        "max_aspect": MAX_ASPECT,
        "stride": int(model.stride),  # the network's sides are padded to a multiple of this (rows, cols)
        "graphs": GRAPHS,
        "bytes": sizes,
        "opset": OPSET,
        "torch": torch.__version__,
        "export_seconds": round(time.perf_counter() - start, 1),
        "sources": digest,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a weights file (default: the best in weights/)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the graphs (default: {OUT})")
    parser.add_argument("--force", action="store_true", help="export even when the sources have not changed")
    args = parser.parse_args(argv)
    manifest = export(args.out, args.weights, args.force)
    for name, file in manifest["graphs"].items():
        print(f"{file:20}  {manifest['bytes'][name]:>12,} bytes")
    print(f"{manifest['weights']} ({manifest['title']}), render size {manifest['render_size']}, into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
