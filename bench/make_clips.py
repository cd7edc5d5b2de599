"""Test clips with known motion, made from the evaluation photos: ``python bench/make_clips.py [-o runs/clips]``.

No real clip ships with our dependencies, so these are built (and never committed): each is a colour H.264 MP4 at
640x360, 24 fps, made by moving a virtual camera over a Kodak24 photo (``../shared/data/eval``):

- ``pan``: the window slides right and a little down across the photo;
- ``zoom``: the camera zooms in 1.5x on the centre;
- ``rotation``: the camera turns 12 degrees about the centre;
- ``object``: a still background with an elliptical cut-out of another photo moving across it;
- ``cut``: two pans over two photos, joined by a hard cut (the stabiliser must start afresh).

Each gets a quiet 440 Hz tone as its audio track. The frames are drawn with sub-pixel accuracy
(``cv2.warpAffine``) and encoded losslessly (H.264 at QP 0, 4:2:0: only the chroma is halved), so the clip holds
the camera's motion and no codec noise. The evaluation takes the decoded frames as the ground truth.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable, Iterator

import av
import cv2
import numpy as np
from PIL import Image

from colorization.paths import data_dir

__all__ = ["CLIPS", "make_clip", "write_clip", "main"]

SIZE = (640, 360)  # width, height
FPS = 24


def _photo(name: str, scale: float = 1.0) -> np.ndarray:
    """A Kodak24 photo as float32 RGB, resized by ``scale`` (area-averaged when shrinking)."""
    path = data_dir() / "eval" / "Kodak24" / name
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    if scale != 1.0:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return rgb


def _view(photo: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 640x360 frame that ``matrix`` (2x3, output pixel -> photo pixel) sees of ``photo``."""
    return cv2.warpAffine(photo, matrix, SIZE, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def _camera(centre: tuple[float, float], zoom: float, degrees: float) -> np.ndarray:
    """Output pixel -> photo pixel for a camera looking at ``centre``, magnified ``zoom`` times, turned ``degrees``."""
    c, s = math.cos(math.radians(degrees)) / zoom, math.sin(math.radians(degrees)) / zoom
    ox, oy = SIZE[0] / 2, SIZE[1] / 2
    return np.array([[c, -s, centre[0] - c * ox + s * oy], [s, c, centre[1] - s * ox - c * oy]], np.float32)


def pan(n: int) -> Iterator[np.ndarray]:
    photo = _photo("kodim14.jpg", 1.25)  # 960x640
    for t in range(n):
        yield _view(photo, _camera((330 + 3.2 * t, 300 + 0.4 * t), 1.0, 0.0))


def zoom(n: int) -> Iterator[np.ndarray]:
    photo = _photo("kodim03.jpg")
    for t in range(n):
        yield _view(photo, _camera((384, 256), 1.25 * 1.5 ** (t / max(n - 1, 1)), 0.0))


def rotation(n: int) -> Iterator[np.ndarray]:
    photo = _photo("kodim22.jpg")
    for t in range(n):
        yield _view(photo, _camera((384, 256), 1.5, 12.0 * t / max(n - 1, 1)))


def moving_object(n: int) -> Iterator[np.ndarray]:
    background = _view(_photo("kodim12.jpg"), _camera((384, 256), 1.0, 0.0))
    thing = _photo("kodim23.jpg", 0.35)[40:150, 60:230]  # a parrot's head, 170x110
    h, w = thing.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (5, 5), 1.0)[..., None]
    for t in range(n):
        x, y = 20 + 430 * t / max(n - 1, 1), 120 + 80 * math.sin(2 * math.pi * t / max(n - 1, 1))
        place = np.float32([[1, 0, x], [0, 1, y]])  # sub-pixel placement of the cut-out and its mask
        over = cv2.warpAffine(thing, place, SIZE, flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(mask, place, SIZE, flags=cv2.INTER_LINEAR)[..., None]
        yield background * (1 - alpha) + over * alpha


def cut(n: int) -> Iterator[np.ndarray]:
    first, second = _photo("kodim01.jpg", 1.25), _photo("kodim21.jpg", 1.25)
    for t in range(n):
        photo, u = (first, t) if t < n // 2 else (second, t - n // 2)
        yield _view(photo, _camera((330 + 3.0 * u, 320), 1.0, 0.0))


CLIPS: dict[str, Callable[[int], Iterator[np.ndarray]]] = {
    "pan": pan, "zoom": zoom, "rotation": rotation, "object": moving_object, "cut": cut,
}


def write_clip(path: Path, frames: Iterator[np.ndarray], fps: int = FPS, qp: int = 0, tone: bool = True) -> int:
    """Encode float or uint8 RGB frames as an H.264 MP4 (with a 440 Hz tone as audio); returns the frame count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps, options={"qp": str(qp), "preset": "medium"})
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        ctx = video.codec_context
        ctx.color_range, ctx.colorspace, ctx.color_primaries, ctx.color_trc = 1, 1, 1, 1
        audio = out.add_stream("aac", rate=48000, layout="mono") if tone else None
        count = 0
        for count, rgb in enumerate(frames, 1):
            frame = av.VideoFrame.from_ndarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            out.mux(video.encode(frame))
            if audio is not None:
                t = (np.arange(48000 // fps) + (count - 1) * (48000 // fps)) / 48000
                sound = av.AudioFrame.from_ndarray((0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                                   format="fltp", layout="mono")
                sound.sample_rate = 48000
                out.mux(audio.encode(sound))
        out.mux(video.encode())
        if audio is not None:
            out.mux(audio.encode())
    return count


def make_clip(name: str, out_dir: Path, seconds: float = 4.0) -> Path:
    """Write clip ``name`` (one of :data:`CLIPS`) into ``out_dir`` as NAME.mp4."""
    path = out_dir / f"{name}.mp4"
    write_clip(path, CLIPS[name](round(seconds * FPS)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out-dir", default="runs/clips")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("names", nargs="*", default=list(CLIPS),
                        help=f"clips to make (default all: {', '.join(CLIPS)})")
    args = parser.parse_args()
    for name in args.names:
        path = make_clip(name, Path(args.out_dir), args.seconds)
        print(f"{path}: {round(args.seconds * FPS)} frames, {SIZE[0]}x{SIZE[1]}, {FPS} fps")


if __name__ == "__main__":
    main()
