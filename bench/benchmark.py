"""Benchmarks (measurements, not tests): ``python bench/benchmark.py {train,latency,cost,batch,load,flood}``.

``train``: training images/s of each registered CNN (the real ``train_step``), with FLOPs per image.

``latency``: CPU latency of the whole pipeline on a 1024x768 photo at the default settings, stage by stage,
beside the forward pass of the ECCV16 network layout (Zhang et al. 2016) at 256x256, in the same run.
``cost``: what each part of a photo request costs the app on one thread (the numbers of ``serving.COSTS``).
``batch``: many photos colorized into one ZIP as the app's Many photos tab does, beside the estimate that bounds it.
``load``: many concurrent ``gradio_client`` clients against a running demo (``python app.py``).
``flood``: many big photos sent at once to a running demo; how long a small photo, the page and the API take.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from colorization.color import rgb_to_l
from colorization.hints import hint_image, hints_at, propagate
from colorization.images import read_image, to_rgb_array
from colorization.pipeline import compose, load_colorizer, prepare, upsample_ab
from colorization.reference import prepare_reference, reference_hints
from colorization.serving import Limits, architecture, colorize_batch, live_preview, plan_batch

HINT_POINTS = 10

__all__ = ["ECCV16Layout", "time_call", "latency", "request_costs", "train_throughput", "load", "flood", "main"]


class ECCV16Layout(nn.Module):
    """The ECCV16 colorization network layout of Zhang et al. 2016 (about 32 M parameters).

    A benchmark reference only: random weights, never trained or shipped; it exists so the
    latency benchmark can compare our pipeline with the classic VGG-style colorizer's forward pass.
    L (N, 1, H, W) in, ab (N, 2, H, W) out (313-bin distribution, softmax, 1x1 to ab, upsample x4).
    """

    def __init__(self):
        super().__init__()

        def block(c_in: int, c_out: int, n: int, stride_last: int = 1, dilation: int = 1) -> nn.Sequential:
            layers: list[nn.Module] = []
            for i in range(n):
                stride = stride_last if i == n - 1 else 1
                layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride, dilation, dilation), nn.ReLU(True)]
            return nn.Sequential(*layers, nn.BatchNorm2d(c_out))

        self.features = nn.Sequential(
            block(1, 64, 2, stride_last=2), block(64, 128, 2, stride_last=2), block(128, 256, 3, stride_last=2),
            block(256, 512, 3), block(512, 512, 3, dilation=2), block(512, 512, 3, dilation=2), block(512, 512, 3),
            nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(True), nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(True),
            nn.Conv2d(256, 313, 1),
        )
        self.to_ab = nn.Conv2d(313, 2, 1, bias=False)

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        logits = self.features(l)  # (N, 313, H/4, W/4)
        ab = self.to_ab(torch.softmax(logits, dim=1))
        return nn.functional.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)


def time_call(fn: Callable[[], object], runs: int = 20, warmup: int = 3) -> list[float]:
    """Wall-clock seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _percentiles_ms(times: Sequence[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 95) * 1e3)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _test_photo(path: Optional[str], size: tuple[int, int] = (1024, 768)) -> bytes:
    """JPEG bytes of ``path`` (as it is) or of scikit-image's coffee photo resized to ``size``."""
    if path:
        return Path(path).read_bytes()
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.coffee()).resize(size, Image.LANCZOS).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def latency(weights: Optional[str] = None, photo: Optional[str] = None, runs: int = 20, threads: int = 2,
            render_size: Optional[int] = None) -> dict:
    """p50/p95 (ms) of the whole pipeline, of each of its stages, of scoring a colour upload, and of the
    ECCV16 layout's forward pass; ``ratio`` is ECCV16's forward over our whole pipeline (p50)."""
    from colorization.evaluation import score_prepared

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    colorizer = load_colorizer(weights, device="cpu", render_size=render_size)
    jpeg = _test_photo(photo)
    image = read_image(io.BytesIO(jpeg))
    pixels, _ = to_rgb_array(image)
    l = rgb_to_l(pixels)
    ab_small = colorizer.predict_ab_small(l)
    ab = upsample_ab(ab_small, l.shape)
    rh, rw = ab_small.shape[:2]
    l_small = torch.nn.functional.interpolate(torch.from_numpy(l)[None, None], size=(rh, rw), mode="area")
    # Ten discs of radius 6 px in a grid, of colours taken from the photo: what a user's few clicks give.
    rng = np.random.default_rng(0)
    points = [(float(x), float(y), tuple(int(c) for c in pixels[int(y), int(x)]), 6.0)
              for x, y in zip(rng.uniform(0, image.width - 1, HINT_POINTS), rng.uniform(0, image.height - 1, HINT_POINTS))]
    hints = hint_image(points, image.size)
    l_np_small = colorizer.l_small(l)
    small_hints = hints_at(hints, (rh, rw))
    # A reference of the same scene, as evaluate --reference same makes it (mirrored, 80 %): its matches pass the
    # gate, so the solve runs, the slower of a reference's two paths.
    buffer = io.BytesIO()
    image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((round(image.width * 0.8), round(image.height * 0.8)),
                                                            Image.BICUBIC).save(buffer, "JPEG", quality=90)
    reference_jpeg = buffer.getvalue()
    reference = prepare_reference(read_image(io.BytesIO(reference_jpeg)), (rh, rw))
    # The app's canvas: the photo stored once, one painted layer (the ten discs) as the editor sends it after a stroke.
    stored = tempfile.TemporaryDirectory()
    photo_path, layer_path = Path(stored.name) / "photo", Path(stored.name) / "layer.png"
    photo_path.write_bytes(jpeg)
    hints.save(layer_path)
    live = lambda: live_preview(colorizer, str(photo_path), stored.name, colorizer.render_size,  # noqa: E731
                                hints=[str(layer_path)])
    eccv16 = ECCV16Layout().eval()
    x_eccv = torch.rand(1, 1, 256, 256) * 100
    whole = f"ours: whole pipeline, {image.width}x{image.height} photo"
    network, eccv = f"ours: network forward only, {rw}x{rh}", "ECCV16 layout: network forward, 256x256"
    with torch.inference_mode():
        times = {
            whole: time_call(lambda: colorizer(read_image(io.BytesIO(jpeg))), runs),
            "  decode (JPEG to RGB array)": time_call(lambda: to_rgb_array(read_image(io.BytesIO(jpeg))), runs),
            "  L at full resolution": time_call(lambda: rgb_to_l(pixels), runs),
            f"  network, resize to {rw}x{rh} included": time_call(lambda: colorizer.predict_ab_small(l), runs),
            "  ab upsampled to full resolution": time_call(lambda: upsample_ab(ab_small, l.shape), runs),
            "  Lab to display uint8, gamut fit included": time_call(lambda: compose(l, ab), runs),
            network: time_call(lambda: colorizer.model(l_small), runs),
            eccv: time_call(lambda: eccv16(x_eccv), runs),
            "colour upload scored (score_prepared: colorize, gray, PSNR/SSIM/colourfulness of both)": time_call(
                lambda: score_prepared(colorizer, prepare(image)), runs),
            f"ours: whole pipeline with {HINT_POINTS} hint points (recolorizing in the app)": time_call(
                lambda: colorizer(read_image(io.BytesIO(jpeg)), hints=hints), runs),
            f"live preview after a stroke (serving.live_preview: the layer read, {HINT_POINTS} discs, preview colorized "
            "and written; the photo prepared on the first call)": time_call(live, runs),
            f"  hints to render resolution ({rw}x{rh})": time_call(lambda: hints_at(hints, (rh, rw)), runs),
            f"  propagation solve at {rw}x{rh}": time_call(lambda: propagate(l_np_small, ab_small, *small_hints), runs),
            "ours: whole pipeline with a reference photo (colour like this photo), both decoded": time_call(
                lambda: colorizer(read_image(io.BytesIO(jpeg)), reference=read_image(io.BytesIO(reference_jpeg))),
                runs),
            "  reference decoded, checked and resized": time_call(
                lambda: prepare_reference(read_image(io.BytesIO(reference_jpeg)), (rh, rw)), runs),
            "  matching: encoder on both, similarity, gate": time_call(
                lambda: reference_hints(colorizer, l_np_small, dataclasses.replace(reference, features={})), runs),
        }
    stored.cleanup()
    rows = {name: _percentiles_ms(t) for name, t in times.items()}
    return {
        "rows": rows,
        "ratio": rows[eccv][0] / rows[whole][0],
        "network_ratio": rows[eccv][0] / rows[network][0],
        "params": {"ours": sum(p.numel() for p in colorizer.model.parameters()),
                   "eccv16": sum(p.numel() for p in eccv16.parameters())},
        "model": colorizer.title, "render_size": colorizer.render_size, "threads": threads, "runs": runs,
    }


def _coffee(size: tuple[int, int], kind: str = "JPEG") -> bytes:
    """The coffee photo resized to ``size``, as JPEG bytes (quality 90) or PNG."""
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.coffee()).resize(size, Image.BICUBIC).save(buffer, kind, quality=90)
    return buffer.getvalue()


def _hint_layer(size: tuple[int, int]) -> bytes:
    """An RGBA PNG of ``size`` with ten painted discs: one hint layer as the editor sends it."""
    rng = np.random.default_rng(0)
    points = [(float(x), float(y), "#2ca02c", size[0] / 50) for x, y in
              zip(rng.uniform(0, size[0], HINT_POINTS), rng.uniform(0, size[1], HINT_POINTS))]
    buffer = io.BytesIO()
    hint_image(points, size).save(buffer, "PNG")
    return buffer.getvalue()


def _slope(times: dict[float, float]) -> tuple[float, float]:
    """(per unit, fixed) of a straight line through the timings at the smallest and largest size."""
    (x0, t0), (x1, t1) = min(times.items()), max(times.items())
    per = (t1 - t0) / (x1 - x0)
    return per, t0 - per * x0


def request_costs(runs: int = 3, sizes: Sequence[float] = (1.0, 8.0), render_sizes: Sequence[int] = (128, 256, 512),
                  hint_layers: int = 8) -> dict:
    """Seconds of one thread for each part of the app's photo request (median of ``runs``), at photos of ``sizes``
    megapixels (4:3), and the per-unit costs fitted from them (:class:`colorization.serving.Costs`); then whole
    requests, timed and estimated, as a check of the fit."""
    import cv2

    from colorization.evaluation import score_images, score_prepared
    from colorization.hints import rgba_hints
    from colorization.pipeline import available_weights, render_shape
    from colorization.hints import MAX_SOLVE_PIXELS
    from colorization.serving import Costs, architecture, painted_share, read_hint_layers

    torch.set_num_threads(1)  # as in the app on 2 cores: each request has one thread
    cv2.setNumThreads(1)
    median = lambda fn: float(np.median(time_call(fn, runs, warmup=1)))  # noqa: E731
    colorizers = {path.name: load_colorizer(path, device="cpu") for path in available_weights()}
    colorizer = next(iter(colorizers.values()))
    stages: dict[str, dict[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for megapixels in sizes:
            width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
            size = (width, int(megapixels * 1e6 / width))
            mp = size[0] * size[1] / 1e6
            png, layer = _coffee(size, "PNG"), Path(tmp) / f"layer{megapixels}.png"
            layer.write_bytes(_hint_layer(size))
            photo = read_image(io.BytesIO(png))
            prepared = prepare(photo)
            ab_small = colorizer.predict_ab_small(prepared.l, 128)
            result = colorizer.colorize_prepared(prepared, 128)
            hints = rgba_hints(read_image(layer))
            half = hints.resize((size[0] // 2, size[1] // 2))
            rgb = lambda image: np.asarray(image.convert("RGB"))  # noqa: E731
            timings = {
                "decode": lambda: read_image(io.BytesIO(png)),
                "prepare": lambda: prepare(photo),
                "compose": lambda: compose(prepared.l, upsample_ab(ab_small, prepared.l.shape), prepared.alpha),
                "score": lambda: score_images(rgb(result), rgb(prepared.gray), prepared.truth),
                "encode": lambda: (result.save(io.BytesIO(), "PNG", compress_level=1),
                                   prepared.gray.save(io.BytesIO(), "PNG", compress_level=1)),
                "encode_gray": lambda: prepared.gray.save(io.BytesIO(), "PNG", compress_level=1),
                "hint layer decode": lambda: rgba_hints(read_image(layer)),
                "hint_layer": lambda: painted_share(Image.alpha_composite(hints, half.resize(size, Image.NEAREST))),
            }
            for name, fn in timings.items():
                stages.setdefault(name, {})[mp] = median(fn)
        network: dict[str, dict[float, float]] = {}
        l = prepare(read_image(io.BytesIO(_coffee((1155, 866))))).l
        for name, each in colorizers.items():
            for render_size in render_sizes:
                h, w = render_shape(*l.shape, render_size)
                network.setdefault(name, {})[h * w / 1e6] = median(lambda: each.predict_ab_small(l, render_size))
        # Files of one architecture share its cost: the slowest of them, at the largest render size measured.
        per_architecture: dict[str, float] = {}
        for name, each in colorizers.items():
            per = _slope(network[name])[0]
            key = architecture(each.info)
            per_architecture[key] = max(per, per_architecture.get(key, 0.0))
        photo = read_image(io.BytesIO(_coffee((1155, 866))))
        layer = Path(tmp) / "layer_small.png"
        layer.write_bytes(_hint_layer(photo.size))
        hints = rgba_hints(read_image(layer))
        propagation = {}
        for render_size in render_sizes:
            h, w = render_shape(photo.height, photo.width, render_size)
            l_small = colorizer.l_small(prepare(photo).l, render_size)
            ab = colorizer.predict_ab_small(prepare(photo).l, render_size)
            propagation[h * w / 1e6] = median(lambda: propagate(l_small, ab, *hints_at(hints, (h, w))))
        fits = {name: _slope(times) for name, times in stages.items()}
        network_fits = {name: _slope(times) for name, times in network.items()}
        # The solve is bounded: above MAX_SOLVE_PIXELS it runs on a smaller copy, so its cost is the bound's.
        solved = {min(mp, MAX_SOLVE_PIXELS / 1e6): t for mp, t in propagation.items()}
        costs = Costs(decode=max(fits["decode"][0], fits["hint layer decode"][0]),
                      prepare=fits["prepare"][0], network=per_architecture, compose=fits["compose"][0],
                      score=fits["score"][0], encode=fits["encode"][0], encode_gray=fits["encode_gray"][0],
                      hint_layer=fits["hint_layer"][0], propagate=max(t / mp for mp, t in solved.items()))

        # Whole requests as the app runs them (serving's hint layers, score_prepared, two PNGs), against the estimate.
        def whole(jpeg: bytes, render_size: int, layers: list[Path]) -> None:
            photo = read_image(io.BytesIO(jpeg))
            prepared = prepare(photo)
            hints = read_hint_layers([str(p) for p in layers], photo.size, 100) if layers else None
            if hints is not None:
                painted_share(hints)
            result, _ = score_prepared(colorizer, prepared, render_size, 1.0, hints)
            result.save(io.BytesIO(), "PNG", compress_level=1)
            prepared.gray.save(io.BytesIO(), "PNG", compress_level=1)

        big_layer = Path(tmp) / "layer8.png"
        big_layer.write_bytes(_hint_layer((3265, 2450)))
        cases = {
            "1024x768 colour, render 128": ((1024, 768), 128, []),
            "1632x1224 (2.0 MP) colour, render 512": ((1632, 1224), 512, []),
            f"1632x1224 colour, render 512, {hint_layers} hint layers of 8 MP": ((1632, 1224), 512,
                                                                              [big_layer] * hint_layers),
            "3265x2450 (8 MP) colour, render 512": ((3265, 2450), 512, []),
        }
        checks = {}
        for name, (size, render_size, layers) in cases.items():
            jpeg = _coffee(size)
            measured = median(lambda: whole(jpeg, render_size, layers))
            checks[name] = (measured, costs.colorize(size, render_size, architecture(colorizer.info),
                                                     [(3265, 2450)] * len(layers)))
    return {"stages": stages, "network": network, "propagation": propagation, "costs": costs, "checks": checks,
            "fits": fits, "network_fits": network_fits}


# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, for the fraction-of-peak column.
_BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "T4": 65e12}


def _training_flops_per_image(model: nn.Module, size: int) -> float:
    """FLOPs of one training step for one image: torch's count of the forward pass, times 3.

    Backward costs about twice the forward. We do not count it with FlopCounterMode because torch
    2.14 counts the backward of depthwise (grouped) convolutions as if they were dense, 11x too high here.
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.rand(1, 1, size, size, device=device) * 100
    model.eval()  # one image: batch norm could not take batch statistics of a 1x1 map
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train()
    return 3.0 * float(counter.get_total_flops())


# What the training benchmark times: every registered model and the architecture options.
TRAIN_VARIANTS = {
    "unet": ("unet", {}),
    "effnet-unet": ("effnet-unet", {}),
    "effnet-unet+fusion": ("effnet-unet", {"global_fusion": True}),
    "effnet-unet classification": ("effnet-unet", {"output": "classification"}),
}


def train_throughput(batch_size: int = 32, sizes: Sequence[int] = (128, 256), steps: int = 10,
                     models: Optional[Sequence[str]] = None, channels_last: bool = False,
                     compile: bool = False, device: Optional[str] = None) -> list[dict]:
    """Training images/s of each model in ``TRAIN_VARIANTS``, timing the real ``train_step`` on random photos."""
    from colorization.models import build_model
    from colorization.train import train_step

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    unknown = set(models or ()) - set(TRAIN_VARIANTS)
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(sorted(unknown))}; known: {', '.join(TRAIN_VARIANTS)}")
    rows = []
    for label in models or TRAIN_VARIANTS:
        name, args = TRAIN_VARIANTS[label]
        for size in sizes:
            torch.manual_seed(0)
            model = build_model(name, **args).to(dev).train()
            if channels_last:
                model.to(memory_format=torch.channels_last)
            flops = _training_flops_per_image(model, size)
            net = torch.compile(model) if compile else model
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, device=dev)

            def step() -> None:
                train_step(net, optimizer, images, size, channels_last=channels_last).item()  # .item() waits

            times = time_call(step, runs=steps, warmup=3 if not compile else 5)
            rate = batch_size / float(np.median(times))
            peak = next((v for k, v in _BF16_PEAK.items() if dev.type == "cuda" and k in torch.cuda.get_device_name(dev)),
                        None)
            rows.append({"model": label, "size": size, "batch": batch_size, "images_per_s": rate,
                         "gflops_per_image": flops / 1e9, "tflops": rate * flops / 1e12,
                         "peak_fraction": (rate * flops / peak) if peak else None})
    return rows


def _worst_upload(megapixels: float) -> bytes:
    """A colour photo of ``megapixels`` (the coffee photo enlarged): the most work one upload can ask of the app,
    which colorizes it and scores model and gray against it at full resolution."""
    from skimage import data

    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(megapixels * 1e6 // width)
    buffer = io.BytesIO()
    Image.fromarray(data.coffee()).resize((width, height), Image.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _peak_memory_mb(pid: int) -> Optional[float]:
    """Peak resident memory (VmHWM) of a process, from Linux's /proc; None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def load(url: str = "http://127.0.0.1:7860", clients: int = 16, requests: int = 4, photo: Optional[str] = None,
         hostile: int = 0, hostile_megapixels: float = 8.0, server_pid: Optional[int] = None,
         hostile_hints: int = 0) -> dict:
    """``clients`` concurrent gradio_client clients, ``requests`` each, against a running demo at ``url``.

    With ``hostile`` > 0, that many more clients send the worst accepted upload (a colour photo of
    ``hostile_megapixels`` at the largest render size, with ``hostile_hints`` hint layers of 8 MP each) over and
    over until the ordinary clients are done.
    """
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp:
        path, big = Path(tmp) / "load_test.jpg", Path(tmp) / "worst_upload.jpg"
        path.write_bytes(_test_photo(photo))
        big.write_bytes(_worst_upload(hostile_megapixels))
        layer = Path(tmp) / "hint_layer.png"
        layer.write_bytes(_hint_layer((3265, 2450)))
        latencies: list[float] = []
        failures: list[str] = []
        hostile_done: list[float] = []
        lock = threading.Lock()
        finished = threading.Event()

        def one_client(_: int) -> None:
            try:  # results stay on the server (download_files=False): this measures the server
                client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported, not raised
                with lock:
                    failures.extend([f"connect: {exc}"] * requests)
                return
            for _ in range(requests):
                start = time.perf_counter()
                try:
                    client.predict(handle_file(str(path)), api_name="/colorize")
                except Exception as exc:  # noqa: BLE001
                    with lock:
                        failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - start)

        def one_attacker(_: int) -> None:
            client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            while not finished.is_set():
                start = time.perf_counter()
                try:
                    hints = ({"background": None, "layers": [handle_file(str(layer))] * hostile_hints,
                              "composite": None} if hostile_hints else None)
                    client.predict(handle_file(str(big)), render_size=512, hints=hints, api_name="/colorize")
                except Exception as exc:  # noqa: BLE001
                    with lock:
                        failures.append(f"big upload: {type(exc).__name__}: {exc}")
                    return
                hostile_done.append(time.perf_counter() - start)

        with ThreadPoolExecutor(hostile or 1) as attackers:
            attacks = [attackers.submit(one_attacker, i) for i in range(hostile)]
            time.sleep(2.0 if hostile else 0.0)  # the big uploads are in the server before the ordinary ones
            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(one_client, range(clients)))
            wall = time.perf_counter() - start
            finished.set()
            for attack in attacks:
                attack.result()
    p50, p95 = _percentiles_ms(latencies) if latencies else (float("nan"), float("nan"))
    return {"url": url, "clients": clients, "requests": clients * requests, "ok": len(latencies),
            "failures": failures, "p50_ms": p50, "p95_ms": p95, "wall_s": wall,
            "hostile": hostile, "hostile_megapixels": hostile_megapixels, "hostile_hints": hostile_hints,
            "hostile_done": len(hostile_done),
            "hostile_p50_s": float(np.median(hostile_done)) if hostile_done else None,
            "server_peak_mb": _peak_memory_mb(server_pid) if server_pid else None}


def flood(url: str = "http://127.0.0.1:7860", requests: int = 45, megapixels: float = 8.0) -> dict:
    """``requests`` colour photos of ``megapixels`` at render size 512 sent at once through ``/gradio_api/call``
    (each its own session), then how long a small gray photo, the API's description and the page take meanwhile,
    and what became of the flood (done, refused by the app, refused by the full queue) and when it settled."""
    import json
    import re

    import httpx
    from gradio_client import Client, handle_file

    meta = {"_type": "gradio.FileData"}
    with tempfile.TemporaryDirectory() as tmp, httpx.Client(base_url=url, timeout=600) as http:
        big, small = Path(tmp) / "flood.jpg", Path(tmp) / "small.png"
        big.write_bytes(_worst_upload(megapixels))
        Image.fromarray(np.full((64, 64), 128, np.uint8)).save(small)
        path = http.post("/gradio_api/upload", files={"files": (big.name, big.read_bytes())}).json()[0]
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        parameters = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/colorize"]
        model = next(p["parameter_default"] for p in parameters["parameters"] if p["parameter_name"] == "model")
        data = [{"path": path, "meta": meta}, model, 512, 1.0, None, "object", None]  # no hints, no reference
        start = time.perf_counter()
        posted = [http.post("/gradio_api/call/colorize", json={"data": data}) for _ in range(requests)]
        time.sleep(1.0)
        answers = {}
        for route in ("/", "/gradio_api/info"):
            begin = time.perf_counter()
            try:
                answers[route] = (http.get(route, timeout=120).status_code, time.perf_counter() - begin)
            except httpx.HTTPError as exc:
                answers[route] = (type(exc).__name__, time.perf_counter() - begin)
        begin = time.perf_counter()
        client.predict(handle_file(str(small)), api_name="/colorize")
        small_s = time.perf_counter() - begin
        outcomes = {"queue full": sum(r.status_code == 503 for r in posted)}
        for response in posted:
            if response.status_code != 200:
                continue
            text = http.get(f"/gradio_api/call/colorize/{response.json()['event_id']}").text
            kind = re.findall(r"^event: (\w+)", text, re.M)[-1]
            message = json.loads(re.findall(r"^data: (.*)$", text, re.M)[-1]) if kind == "error" else None
            key = "done" if kind == "complete" else f"refused: {str(message)[:60]}"
            outcomes[key] = outcomes.get(key, 0) + 1
        settled_s = time.perf_counter() - start
    return {"requests": requests, "megapixels": megapixels, "small_s": small_s, "answers": answers,
            "outcomes": outcomes, "settled_s": settled_s}


def batch(photos: int = 10, megapixels: float = 8.0, threads: int = 1, weights: Optional[str] = None) -> dict:
    """Seconds to colorize ``photos`` JPEGs of ``megapixels`` each as the Many photos tab does (plan_batch, then
    colorize_batch into one ZIP) on ``threads`` threads (the big lane's share of a 2-vCPU host: 1), beside the
    estimate (serving.COSTS) that chooses the lane and bounds a batch."""
    from colorization.pipeline import default_weights
    from colorization.weights import read_metadata

    torch.set_num_threads(threads)
    weights = weights or default_weights()
    colorizer = load_colorizer(weights, device="cpu")
    side = int(round((megapixels * 1e6 / 1.5) ** 0.5))
    jpeg = _coffee((int(side * 1.5), side))
    with tempfile.TemporaryDirectory() as root:
        files = []
        for i in range(photos):
            (Path(root) / f"upload{i}").write_bytes(jpeg)
            files.append((str(Path(root) / f"upload{i}"), f"photo{i}.jpg"))
        start = time.perf_counter()
        plan = plan_batch(files, root, Limits(max_batch_megapixels=photos * megapixels + 1))
        planned = time.perf_counter() - start
        estimated = plan.seconds(colorizer.render_size, architecture(read_metadata(weights)))
        start = time.perf_counter()
        result = colorize_batch(colorizer, plan, root, colorizer.render_size)
        seconds = time.perf_counter() - start
        size = result.path.stat().st_size
    return {"photos": photos, "megapixels": plan.megapixels, "planned_s": planned, "seconds": seconds,
            "estimated_s": estimated, "zip_mb": size / 1e6, "render_size": colorizer.render_size,
            "model": colorizer.title, "threads": threads}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/benchmark.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lat = sub.add_parser("latency", help="CPU latency of the pipeline, stage by stage, beside the ECCV16 layout")
    lat.add_argument("--weights", help="weights file (default: the best in weights/)")
    lat.add_argument("--photo", help="photo to time (default: a 1024x768 photo made from skimage's coffee)")
    lat.add_argument("--runs", type=int, default=20)
    lat.add_argument("--threads", type=int, default=2)
    lat.add_argument("--render-size", type=int, help="default: the weights file's own")
    tr = sub.add_parser("train", help="training throughput (images/s) of each registered CNN")
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    tr.add_argument("--steps", type=int, default=10, help="timed steps per row (median is reported)")
    tr.add_argument("--models", nargs="+")
    tr.add_argument("--channels-last", action="store_true")
    tr.add_argument("--compile", action="store_true")
    tr.add_argument("--device")
    co = sub.add_parser("cost", help="seconds of one thread for each part of a photo request (serving.COSTS)")
    co.add_argument("--runs", type=int, default=3)
    ld = sub.add_parser("load", help="concurrent clients against a running app (start it first: python app.py)")
    ld.add_argument("--url", default="http://127.0.0.1:7860")
    ld.add_argument("--clients", type=int, default=16)
    ld.add_argument("--requests", type=int, default=4, help="requests per client")
    ld.add_argument("--photo", help="photo to send (default: the same 1024x768 photo as latency)")
    ld.add_argument("--hostile", type=int, default=0, help="clients sending the worst accepted upload meanwhile")
    ld.add_argument("--hostile-megapixels", type=float, default=8.0, help="its size (default: the app's limit)")
    ld.add_argument("--hostile-hints", type=int, default=0, help="hint layers of 8 MP with each big upload")
    ld.add_argument("--server-pid", type=int, help="the app's process id, to report its peak memory")
    ba = sub.add_parser("batch", help="many photos at once as the app's Many photos tab colorizes them, one ZIP")
    ba.add_argument("--photos", type=int, default=10)
    ba.add_argument("--megapixels", type=float, default=8.0)
    ba.add_argument("--threads", type=int, default=1, help="the big lane's share of a 2-vCPU host (default 1)")
    ba.add_argument("--weights", help="weights file (default: the best in weights/)")
    fl = sub.add_parser("flood", help="many big photos at once: how long a small photo, the page and the API take")
    fl.add_argument("--url", default="http://127.0.0.1:7860")
    fl.add_argument("--requests", type=int, default=45)
    fl.add_argument("--megapixels", type=float, default=8.0)
    args = parser.parse_args(argv)

    if args.command == "train":
        rows = train_throughput(args.batch_size, args.sizes, args.steps, args.models, args.channels_last,
                                args.compile, args.device)
        dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        where = torch.cuda.get_device_name() if dev.startswith("cuda") else f"{_cpu_name()}, {torch.get_num_threads()} threads"
        print(f"training throughput on {where}; torch {torch.__version__}; channels_last={args.channels_last} "
              f"compile={args.compile}; bf16 autocast on CUDA")
        w = max(len("model"), *(len(r["model"]) for r in rows))
        print(f"{'model':<{w}} {'size':>5} {'batch':>6} {'img/s':>9} {'GFLOP/img':>10} {'TFLOP/s':>8} {'of bf16 peak':>13}")
        for r in rows:
            frac = f"{100 * r['peak_fraction']:.1f}%" if r["peak_fraction"] is not None else "n/a"
            print(f"{r['model']:<{w}} {r['size']:>5} {r['batch']:>6} {r['images_per_s']:>9.1f} "
                  f"{r['gflops_per_image']:>10.2f} {r['tflops']:>8.3f} {frac:>13}")
        return 0
    if args.command == "batch":
        r = batch(args.photos, args.megapixels, args.threads, args.weights)
        print(f"{r['photos']} JPEGs, {r['megapixels']:.1f} MP in all, {r['model']} at render size {r['render_size']}, "
              f"{r['threads']} thread(s); {_cpu_name()}, load average {os.getloadavg()[0]:.1f}")
        print(f"planned (headers, limits) in {r['planned_s']:.2f} s; colorized into one ZIP of {r['zip_mb']:.0f} MB in "
              f"{r['seconds']:.1f} s (estimated {r['estimated_s']:.1f} s)")
        return 0
    if args.command == "flood":
        report = flood(args.url, args.requests, args.megapixels)
        print(f"{report['requests']} colour photos of {report['megapixels']:g} MP at render size 512 sent at once to "
              f"{args.url}; load average {os.getloadavg()[0]:.1f}")
        print(f"meanwhile: a 64x64 gray photo {report['small_s']:.2f} s; "
              + ", ".join(f"GET {route} {status} in {seconds:.2f} s" for route, (status, seconds) in report["answers"].items()))
        print(f"the flood: {report['outcomes']}, settled after {report['settled_s']:.1f} s")
        return 0
    if args.command == "cost":
        report = request_costs(args.runs)
        print(f"one thread; median of {args.runs} runs; torch {torch.__version__}; {_cpu_name()}, {os.cpu_count()} "
              f"cores, load average {os.getloadavg()[0]:.1f}")
        for name, times in report["stages"].items():
            per, fixed = report["fits"][name]
            cells = ", ".join(f"{mp:.2f} MP {t * 1e3:.0f} ms" for mp, t in times.items())
            print(f"{name:<18} {cells}: {per * 1e3:.1f} ms per MP + {fixed * 1e3:.0f} ms")
        for name, times in report["network"].items():
            cells = ", ".join(f"{mp:.3f} MP {t * 1e3:.0f} ms" for mp, t in times.items())
            print(f"network {name:<26} {cells}: {report['network_fits'][name][0] * 1e3:.0f} ms per network MP")
        cells = ", ".join(f"{mp:.3f} MP {t * 1e3:.0f} ms" for mp, t in report["propagation"].items())
        print(f"propagation (10 discs) {cells}")
        shown = {k: f"{v:.4g}" if isinstance(v, float) else repr({a: round(x, 4) for a, x in v.items()})
                 for k, v in vars(report["costs"]).items()}
        print(f"serving.Costs({', '.join(f'{k}={v}' for k, v in shown.items())})")
        for name, (measured, estimated) in report["checks"].items():
            print(f"whole request, {name}: measured {measured:.2f} s, estimated {estimated:.2f} s")
        return 0
    if args.command == "latency":
        report = latency(args.weights, args.photo, args.runs, args.threads, args.render_size)
        print(f"CPU latency: {report['threads']} torch threads, p50/p95 of {report['runs']} runs after warm-up; "
              f"torch {torch.__version__}; {_cpu_name()}, {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every row)")
        print(f"ours: {report['model']}, {report['params']['ours'] / 1e6:.1f} M params, render size "
              f"{report['render_size']}. ECCV16 layout: {report['params']['eccv16'] / 1e6:.1f} M params, random weights")
        width = max(map(len, report["rows"]))
        print(f"{'':{width}}  {'p50 ms':>8}  {'p95 ms':>8}")
        for name, (p50, p95) in report["rows"].items():
            print(f"{name:{width}}  {p50:8.1f}  {p95:8.1f}")
        print(f"ECCV16 forward / our whole pipeline (p50): {report['ratio']:.2f}x; "
              f"ECCV16 forward / our forward: {report['network_ratio']:.2f}x")
    else:
        report = load(args.url, args.clients, args.requests, args.photo, args.hostile, args.hostile_megapixels,
                      args.server_pid, args.hostile_hints)
        print(f"load test against {report['url']}: {report['clients']} clients x {args.requests} requests"
              + (f", {args.hostile} more clients sending {args.hostile_megapixels:g} MP colour photos at render "
                 f"size 512{f' with {args.hostile_hints} hint layers of 8 MP' if args.hostile_hints else ''} "
                 "meanwhile" if args.hostile else ""))
        print(f"ok {report['ok']}/{report['requests']}, failures {len(report['failures'])}, "
              f"p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, wall {report['wall_s']:.1f} s, "
              f"{report['ok'] / report['wall_s']:.2f} requests/s")
        if args.hostile:
            print(f"big uploads served meanwhile: {report['hostile_done']}, p50 {report['hostile_p50_s']:.1f} s")
        if report["server_peak_mb"]:
            print(f"server peak memory (VmHWM): {report['server_peak_mb']:.0f} MB")
        for failure in sorted(set(report["failures"]))[:5]:
            print(f"  failure: {failure}")
        return 1 if report["failures"] else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
