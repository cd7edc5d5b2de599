"""Which blend weight should the video stabiliser use? Sweep it over the test clips.

    python bench/make_clips.py -o runs/clips                    # the generated clips (not committed)
    python experiments/video_blend/blend_sweep.py runs/clips/*.mp4 [runs/clips/vtest.avi] \
        [--blends 0.5 0.7 0.8 0.9 0.95] [--frames 96] [--json experiments/video_blend/results/sweep.json]

Each clip is colorized from its gray version once per frame (blend 0, the per-frame baseline) and stabilised at
every blend from the same network outputs (``colorization.video.evaluate_video``); the table gives each blend's
PSNR and colourfulness change against the baseline and its warp errors and CDC as a share of the baseline's.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import torch

from colorization import load_colorizer
from colorization.video import evaluate_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--blends", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.95])
    parser.add_argument("--frames", type=int, default=96, help="first N frames of each clip")
    parser.add_argument("--weights", help="default: the best shipped weights")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the reports here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    colorizer = load_colorizer(args.weights, device="cpu")
    reports = []
    print(f"{colorizer.title}, render size {colorizer.render_size}; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {args.threads} thread(s)")
    print(f"{'clip':10}{'blend':>6}{'dPSNR':>8}{'dCF %':>8}{'warp %':>8}{'warp ab %':>10}{'CDC %':>8}"
          f"{'  (per-frame: PSNR, CF, warp x1e3, warp ab, CDC x1e3)'}")
    for clip in args.clips:
        start = time.perf_counter()
        report = evaluate_video(colorizer, clip, args.blends, max_frames=args.frames, progress=False)
        report["seconds"] = time.perf_counter() - start
        reports.append(report)
        base = report["runs"][0]
        for run in report["runs"]:
            print(f"{Path(clip).stem:10}{run['blend']:>6g}{run['psnr'] - base['psnr']:>+8.3f}"
                  f"{100 * (run['colorfulness'] / base['colorfulness'] - 1):>+8.1f}"
                  f"{100 * run['warp_error'] / base['warp_error']:>8.1f}"
                  f"{100 * run['warp_error_ab'] / base['warp_error_ab']:>10.1f}{100 * run['cdc'] / base['cdc']:>8.1f}"
                  + (f"  ({base['psnr']:.2f} dB, {base['colorfulness']:.1f}, {1e3 * base['warp_error']:.3f}, "
                     f"{base['warp_error_ab']:.3f}, {1e3 * base['cdc']:.3f}; gray warp "
                     f"{1e3 * report['gray']['warp_error']:.3f}, CDC {1e3 * report['gray']['cdc']:.3f})"
                     if run is base else ""), flush=True)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
