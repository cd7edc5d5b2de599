"""Video speed (a measurement, not a test): ``python bench/video_benchmark.py [--clip C] [--threads 2] [--runs 3]``.

Frames per second of ``colorize_video`` on a 640x360 clip with the default model, per-frame baseline and
stabilised, decoding and encoding included, and the cost of each stage per frame (p50 over the clip's frames).
Without ``--clip`` it times a 96-frame pan over scikit-image's coffee photo, made here at 640x360.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import av
import cv2
import numpy as np
import torch

from colorization import load_colorizer
from colorization.color import rgb_to_l
from colorization.pipeline import compose, upsample_ab
from colorization.runtime import hardware_name
from colorization.video import DEFAULT_BLEND, MotionTracker, colorize_video, read_frames, stabilize

__all__ = ["make_test_clip", "video_speed", "main"]


def make_test_clip(path: Path, frames: int = 96, size: tuple[int, int] = (640, 360), fps: int = 24) -> Path:
    """A pan over the coffee photo, ``size`` (width, height), as an H.264 MP4."""
    from skimage import data

    # 3:2 like the photo, and large enough for the window to travel 2.5 px right and 0.5 px down per frame.
    photo = cv2.resize(data.coffee(), (size[0] + 3 * frames, round((size[0] + 3 * frames) * 2 / 3)),
                       interpolation=cv2.INTER_CUBIC).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "16"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for t in range(frames):
            view = cv2.warpAffine(photo, np.float32([[1, 0, -2.5 * t], [0, 1, -0.5 * t]]), size)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.clip(view, 0, 255).astype(np.uint8), format="rgb24")))
        out.mux(stream.encode())
    return path


def _per_frame_ms(fn: Callable[[np.ndarray], object], items: list) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1e3)


def video_speed(clip: Path, weights: Optional[str] = None, runs: int = 3) -> dict:
    """Frames/s of the whole job in each run, per frame and stabilised, and each stage's ms per frame."""
    colorizer = load_colorizer(weights, device="cpu")
    out = Path(tempfile.mkdtemp()) / "out.mp4"
    colorize_video(colorizer, clip, out)  # warm-up: oneDNN picks its kernels for this shape
    rates: dict[str, list[float]] = {"per-frame": [], "stabilised": []}
    for _ in range(runs):  # interleaved, so that both see the same share of whatever else the machine runs
        for temporal, name in ((False, "per-frame"), (True, "stabilised")):
            rates[name].append(colorize_video(colorizer, clip, out, temporal).frames_per_second)

    start = time.perf_counter()
    frames = list(read_frames(clip))
    decode = (time.perf_counter() - start) * 1e3 / len(frames)
    ls = [rgb_to_l(f) for f in frames]
    smalls = [colorizer.l_small(l) for l in ls]
    abs_small = [colorizer.predict_ab_small(l) for l in ls]
    tracker, previous = MotionTracker(), [None]

    def stabilise(i: int) -> None:
        previous[0] = stabilize(abs_small[i], previous[0], tracker(smalls[i]), DEFAULT_BLEND)

    with av.open(os.devnull, "w", format="mp4") as sink:
        stream = sink.add_stream("libx264", rate=24, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"

        def encode(rgb: np.ndarray) -> None:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            sink.mux(stream.encode(frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")))

        outputs = [np.asarray(compose(l, upsample_ab(ab, l.shape))) for l, ab in zip(ls, abs_small)]
        stages = {
            "decode (H.264 to RGB)": decode,
            "L at full resolution": _per_frame_ms(rgb_to_l, frames),
            f"network at {smalls[0].shape[1]}x{smalls[0].shape[0]}, resize included": _per_frame_ms(
                colorizer.predict_ab_small, ls),
            "stabilisation (DIS flow both ways, check, blend)": _per_frame_ms(stabilise, list(range(len(frames)))),
            "ab upsampled, Lab to display uint8": _per_frame_ms(
                lambda i: compose(ls[i], upsample_ab(abs_small[i], ls[i].shape)), list(range(len(frames)))),
            "encode (RGB to BT.709 yuv420p, x264 veryfast)": _per_frame_ms(encode, outputs),
        }
        sink.mux(stream.encode())
    return {"rates": rates, "stages": stages, "frames": len(frames), "size": frames[0].shape[1::-1],
            "model": colorizer.title, "render_size": colorizer.render_size, "runs": runs}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/video_benchmark.py", description=__doc__.splitlines()[0])
    parser.add_argument("--clip", help="clip to time (default: a 96-frame 640x360 pan made here)")
    parser.add_argument("--weights", help="weights file (default: the best in weights/)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    clip = Path(args.clip) if args.clip else make_test_clip(Path(tempfile.mkdtemp()) / "pan640x360.mp4")
    report = video_speed(clip, args.weights, args.runs)
    print(f"video speed: {hardware_name(torch.device('cpu'))}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every row)")
    print(f"{report['model']}, render size {report['render_size']}; {report['frames']} frames of "
          f"{report['size'][0]}x{report['size'][1]}; whole job = decode + colorize + encode + mux, {args.runs} runs")
    for name, rates in report["rates"].items():
        print(f"  {name:12} {np.median(rates):6.1f} frames/s (runs: {', '.join(f'{r:.1f}' for r in rates)})")
    width = max(map(len, report["stages"]))
    print(f"{'stage, per frame':{width}}  {'p50 ms':>7}")
    for name, ms in report["stages"].items():
        print(f"{name:{width}}  {ms:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
