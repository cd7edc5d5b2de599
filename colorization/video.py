"""Video: colorize a clip frame by frame without flicker, and measure how much it flickers.

Each frame keeps its own full-resolution L (luminance cannot flicker) and gets ab from the network at the render
resolution. Alone, each frame's ab changes a little with every change of the picture, so colours flicker. The
stabiliser (the light form of Lai et al. 2018 and Bonneel et al. 2015) blends each frame's predicted ab with the
previous output's ab carried along the optical flow of the gray frames (OpenCV's DIS, at the render resolution),
only where a forward-backward check says the flow is reliable, and starts afresh at a scene cut (a jump in the
gray frames' histogram). Frames stream through memory: a long clip never sits in memory whole.

Decoding and encoding use PyAV (FFmpeg's libraries, libx264 included in its wheel). The output is an H.264 MP4
(yuv420p, BT.709, ``faststart``) that browsers play, with the source's frame timing and its audio track.

The temporal measures are Lai et al.'s warp error and the colour distribution consistency (CDC) of the TCVC and
ColorMNet evaluation code; :func:`evaluate_video` reports them beside PSNR, SSIM and colourfulness per frame.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from .color import gray_display, rgb_to_l, rgb_to_lab
from .files import atomic_write
from .images import MAX_MEGAPIXELS, ImageError
from .pipeline import Colorizer, ImageLike, compose, upsample_ab

__all__ = [
    "VideoError",
    "VideoInfo",
    "VideoStats",
    "VideoBudget",
    "VIDEO_EXTENSIONS",
    "DEFAULT_BLEND",
    "is_video",
    "find_videos",
    "probe_video",
    "read_frames",
    "colorize_frames",
    "colorize_video",
    "evaluate_video",
    "format_video_table",
    "MotionTracker",
    "Motion",
    "stabilize",
    "TemporalScores",
    "warp_error",
    "cdc",
]

PathLike = Union[str, os.PathLike]
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ogv", ".wmv", ".flv", ".ts",
                    ".h264", ".264")  # the last two: raw H.264 streams, with no duration (VideoBudget bounds them)
# Share of the previous output's ab (carried along the flow) kept in each frame where the flow is reliable:
# chosen by measurement, experiments/video_blend/README.md.
DEFAULT_BLEND = 0.8
# A scene cut: a tenth of the gray frame's histogram mass moved (total variation distance of 32-bin histograms;
# within a shot of the test clips at most 0.015, across their cut 0.23), or the flow follows under a quarter of it.
CUT_THRESHOLD = 0.1
MIN_RELIABLE = 0.25
# Forward-backward check (Sundaram et al. 2010, as Lai et al.): |f + b|^2 <= 0.01 (|f|^2 + |b|^2) + 0.5 px^2.
_FB_RELATIVE, _FB_ABSOLUTE = 0.01, 0.5
# Audio codecs an MP4 holds as they are; any other track is re-encoded as AAC.
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"}
_EXACT_FRAME_COUNT = {"mov,mp4,m4a,3gp,3g2,mj2"}  # demuxers whose header frame count is exact


class VideoError(ImageError):
    """A file that cannot be used as a video (not one, damaged, truncated) or one past a limit; says why."""


def is_video(path: PathLike) -> bool:
    """Whether ``path`` names a video by its container's extension (the CLI's test)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_videos(paths: Iterable[PathLike]) -> list[Path]:
    """The clips among ``paths``: named files with a video extension, and such files in folders (recursively)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if is_video(f) and f.is_file()))
        elif is_video(p):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such file")
            found.append(p)
    return found


@dataclass
class VideoInfo:
    """What a clip's header says."""

    width: int
    height: int
    fps: float  # the average frame rate
    frames: Optional[int]  # None when the container does not say
    seconds: Optional[float]
    codec: str
    audio: Optional[str]  # the first audio track's codec, or None


@dataclass
class VideoStats:
    """What :func:`colorize_video` did."""

    frames: int
    fps: float
    width: int
    height: int
    audio: Optional[str]  # "copied (aac)", "re-encoded as aac (pcm_s16le)" or None
    temporal: bool  # stabilised: asked for, and the frames were large enough for the optical flow
    blend: float
    scene_cuts: int
    reliable: float  # mean share of each frame's pixels that took the previous frame's colour (0 without temporal)
    seconds: float  # wall-clock time of the whole job
    notes: list[str] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        """Processing speed: frames colorized (decoding and encoding included) per wall-clock second."""
        return self.frames / self.seconds if self.seconds > 0 else math.nan


@dataclass(frozen=True)
class VideoBudget:
    """The most work one clip may cost, counted on the frames as they are decoded: a header's duration and frame
    rate can lie or be missing (a raw H.264 stream has neither), and 100,000 frames of 16 x 16 at 5,000 frames/s
    last 20 s. Every frame costs a pass of the network whatever its size, so frames are counted as well as pixels.
    """

    frames: Optional[int] = None  # frames decoded
    megapixels: Optional[float] = None  # the decoded frames' pixels added up, in millions
    # A spent budget's message names the environment variable that raises it (the CLI's; the app's users cannot).
    name_variables: bool = False

    FRAMES_VARIABLE = "COLORIZE_MAX_VIDEO_FRAMES"
    MEGAPIXELS_VARIABLE = "COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS"

    def __post_init__(self):
        for name, value in (("frames", self.frames), ("megapixels", self.megapixels)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"a video budget's {name} must be a positive number, got {value!r}")

    @classmethod
    def from_environment(cls, frames: int, megapixels: float, name_variables: bool = False) -> "VideoBudget":
        """``COLORIZE_MAX_VIDEO_FRAMES`` and ``COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS`` when set, else the caller's
        defaults (the app's are a small host's, the CLI's larger); ValueError naming a variable that is not a
        positive number. ``name_variables``: the message of a spent budget says which variable raises it."""
        values = {}
        for variable, default, kind in ((cls.FRAMES_VARIABLE, frames, int), (cls.MEGAPIXELS_VARIABLE, megapixels,
                                                                              float)):
            text = os.environ.get(variable)
            try:
                value = kind(text) if text is not None else default
            except ValueError:
                raise ValueError(f"{variable} must be a positive number, got {text!r}") from None
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{variable} must be a positive number, got {text!r}")
            values[variable] = value
        return cls(values[cls.FRAMES_VARIABLE], values[cls.MEGAPIXELS_VARIABLE], name_variables)

    def _refuse(self, message: str, variable: str) -> VideoError:
        return VideoError(f"{message} ({variable} raises this)" if self.name_variables else message)

    def check_header(self, info: VideoInfo, path: PathLike) -> None:
        """Refuse at once a clip whose header already claims more than the budget (it may claim less and lie)."""
        frames = info.frames
        if frames is None and info.seconds is not None and math.isfinite(info.fps):
            frames = round(info.seconds * info.fps)
        if not frames:
            return
        if info.frames:
            claim, sure = f"{frames} frames", frames
        else:  # duration times an average rate is approximate: refuse on it only 2 % past; decoding counts the rest
            claim, sure = f"about {frames} frames ({info.seconds:.1f} s at {info.fps:g} frames/s)", 0.98 * frames
        if self.frames is not None and sure > self.frames:
            raise self._refuse(f"{path}: {claim}; at most {self.frames} frames are accepted", self.FRAMES_VARIABLE)
        pixels = info.width * info.height
        if self.megapixels is not None and sure * pixels > self.megapixels * 1e6:
            raise self._refuse(f"{path}: {claim} of {info.width}x{info.height} make {frames * pixels / 1e6:.3g} "
                               f"megapixels; at most {self.megapixels:g} megapixels of frames are accepted",
                               self.MEGAPIXELS_VARIABLE)

    def check(self, path: PathLike, frames: int, pixels: int) -> None:
        """Refuse the clip once the frames decoded so far (``frames`` of ``pixels`` in all) are over the budget."""
        if self.frames is not None and frames > self.frames:
            raise self._refuse(f"{path}: more than {self.frames} frames; at most {self.frames} are accepted",
                               self.FRAMES_VARIABLE)
        if self.megapixels is not None and pixels > self.megapixels * 1e6:
            raise self._refuse(f"{path}: its first {frames} frames already make {pixels / 1e6:.3g} megapixels; "
                               f"at most {self.megapixels:g} megapixels of frames are accepted",
                               self.MEGAPIXELS_VARIABLE)


# --- reading -------------------------------------------------------------------------------------------------

def _av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is in requirements.txt
        raise VideoError("video needs PyAV: pip install av") from exc
    av.logging.set_level(av.logging.FATAL)  # damaged input is reported as one VideoError, not FFmpeg's log lines
    return av


def _open(path: PathLike):
    """An input container with at least one video stream, or VideoError (FileNotFoundError for a missing file)."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: not a video that FFmpeg can read ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream in it")
    return container


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _info(container, path: PathLike) -> VideoInfo:
    stream = container.streams.video[0]
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate
    seconds = None
    if stream.duration is not None and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1e6
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    if not ctx.width or not ctx.height:
        raise VideoError(f"{path}: the video stream has no frame size")
    return VideoInfo(width=ctx.width, height=ctx.height, fps=float(rate) if rate else math.nan,
                     frames=stream.frames or None, seconds=seconds, codec=ctx.name, audio=audio)


def probe_video(path: PathLike) -> VideoInfo:
    """A clip's header (size, frame rate, frame count, duration, codecs) without decoding; VideoError if unusable."""
    with _open(path) as container:
        return _info(container, path)


def _rgb(frame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB, turned upright when its display matrix says so."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise quarter turns
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _check_limits(info: VideoInfo, path: PathLike, max_seconds: Optional[float], max_megapixels: float) -> None:
    if info.width * info.height > max_megapixels * 1e6:
        raise VideoError(f"{path}: frames of {info.width}x{info.height} are {info.width * info.height / 1e6:.2f} "
                         f"megapixels; at most {max_megapixels:g} are accepted")
    if max_seconds is not None and info.seconds is not None and info.seconds > max_seconds + 1e-6:
        raise VideoError(f"{path}: {info.seconds:.1f} s long; at most {max_seconds:g} s is accepted")


def read_frames(path: PathLike, max_frames: Optional[int] = None, max_megapixels: float = MAX_MEGAPIXELS,
                budget: Optional[VideoBudget] = None) -> Iterator[np.ndarray]:
    """The clip's frames as (H, W, 3) uint8 RGB, one at a time; VideoError for a damaged or truncated file, or
    once the frames decoded are over ``budget``. ``max_frames`` stops quietly after that many frames."""
    with _open(path) as container:
        info = _info(container, path)
        _check_limits(info, path, None, max_megapixels)
        if budget is not None and max_frames is None:
            budget.check_header(info, path)
        for _, frame in _decoded(container, path, info, None, max_frames, max_megapixels, budget):
            yield _rgb(frame)


def _decoded(container, path: PathLike, info: VideoInfo, audio: Optional[Callable], max_frames: Optional[int],
             max_megapixels: float = MAX_MEGAPIXELS, budget: Optional[VideoBudget] = None):
    """(index, av.VideoFrame) in display order; audio packets go to ``audio`` as they are demuxed. Each frame's
    size is checked as decoded, and the work so far against ``budget``: the header may have said otherwise."""
    av = _av()
    video = container.streams.video[0]
    streams = [video] + ([container.streams.audio[0]] if audio and container.streams.audio else [])
    count = total = 0  # frames and pixels decoded
    try:
        for packet in container.demux(streams):
            if packet.stream.type == "audio":
                audio(packet)
                continue
            for frame in packet.decode():
                pixels = frame.width * frame.height
                if pixels > max_megapixels * 1e6:
                    raise VideoError(f"{path}: frame {count + 1} is {frame.width}x{frame.height}, "
                                     f"{pixels / 1e6:.2f} megapixels; at most {max_megapixels:g} are accepted")
                total += pixels
                if budget is not None:
                    budget.check(path, count + 1, total)
                yield count, frame
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: damaged after {count} frames ({_reason(exc)})") from None
    if count == 0:
        raise VideoError(f"{path}: no frame could be decoded")
    if container.format.name in _EXACT_FRAME_COUNT and info.frames and count < info.frames - max(2, info.frames // 100):
        raise VideoError(f"{path}: ends after {count} of its {info.frames} frames (truncated?)")


# --- stabilisation -------------------------------------------------------------------------------------------

@dataclass
class Motion:
    """How the previous frame maps onto the current one, at the render resolution."""

    map: np.ndarray  # (h, w, 2) float32: where each current pixel was in the previous frame (cv2.remap's map)
    reliable: np.ndarray  # (h, w) float32, 1 where the forward-backward check holds and the source is inside

    def warp(self, previous: np.ndarray) -> np.ndarray:
        """An array of the previous frame (h, w[, c]) carried onto the current frame."""
        return cv2.remap(previous, self.map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _gray8(l: np.ndarray) -> np.ndarray:
    return cv2.convertScaleAbs(l, alpha=255.0 / 100.0)  # L in [0, 100] to the uint8 DIS wants (rounded, saturated)


def _grid(h: int, w: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.dstack([xs, ys])


def _consistent(forward: np.ndarray, backward: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(map, mask): ``backward`` (second -> first frame) as a remap map into the first frame, and where the
    forward flow (first -> second) at the mapped point undoes it (the forward-backward check), inside the frame."""
    where = grid + backward
    forward_there = cv2.remap(forward, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    error = cv2.magnitude(*cv2.split(forward_there + backward)) ** 2
    scale = cv2.magnitude(*cv2.split(forward_there)) ** 2 + cv2.magnitude(*cv2.split(backward)) ** 2
    h, w = backward.shape[:2]
    inside = (where[..., 0] >= 0) & (where[..., 0] <= w - 1) & (where[..., 1] >= 0) & (where[..., 1] <= h - 1)
    return where, (error <= _FB_RELATIVE * scale + _FB_ABSOLUTE) & inside


_TOO_SMALL = ("each frame colorized alone: at the render resolution the frames are too thin for the optical flow "
              "(it needs 8 pixels on the short side)")


def _dis_coarsest_scale(h: int, w: int, patch_size: int) -> int:
    """The coarsest pyramid level DIS picks for an h x w frame (dis_flow.cpp's formula); negative when its patches
    fit no level. DIS itself then raises, or, when this is under its finest level, picks levels from the width
    alone, which overrun a short height (a 256 x 16 frame crashed the process)."""
    return min(math.floor(math.log(max(h, w) / (4.0 * patch_size)) / math.log(2.0) + 0.5),
               math.floor(math.log(min(h, w) / patch_size) / math.log(2.0)))


class MotionTracker:
    """Optical flow between consecutive gray frames (DIS), with scene-cut detection; ``tracker(l) -> Motion | None``.

    None for the first frame and after a cut: nothing of the previous frame should be carried over. None also for
    every frame too small or too thin for the flow (under 8 pixels on its short side, or 23 on its long side, for
    the default preset); ``too_small`` is then True.
    """

    def __init__(self, cut_threshold: float = CUT_THRESHOLD, min_reliable: float = MIN_RELIABLE,
                 preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST):
        self.cut_threshold, self.min_reliable = cut_threshold, min_reliable
        self.cuts = 0
        self.too_small = False
        # At the render resolution (228x128 for 640x360 at 128) both directions of DIS cost about 1.5 ms.
        self._flow = cv2.DISOpticalFlow_create(preset)
        self._finest = self._flow.getFinestScale()
        self._gray: Optional[np.ndarray] = None
        self._hist: Optional[np.ndarray] = None
        self._grid: Optional[np.ndarray] = None

    def __call__(self, l: np.ndarray) -> Optional[Motion]:
        """The motion from the previous call's frame to this one; ``l`` is the frame's L (h, w) in [0, 100]."""
        gray = _gray8(l)
        hist = cv2.calcHist([gray], [0], None, [32], [0, 256]).ravel() / gray.size
        previous, previous_hist = self._gray, self._hist
        self._gray, self._hist = gray, hist
        if previous is None or previous.shape != gray.shape:
            return None
        if self._grid is None or self._grid.shape[:2] != gray.shape:
            coarsest = _dis_coarsest_scale(*gray.shape, self._flow.getPatchSize())
            self.too_small = coarsest < 0
            if not self.too_small:  # a small frame gets finer levels, never DIS's choice by width
                self._flow.setFinestScale(min(self._finest, coarsest))
            self._grid = _grid(*gray.shape)
        if self.too_small:
            return None
        if 0.5 * float(np.abs(hist - previous_hist).sum()) > self.cut_threshold:
            self.cuts += 1
            return None
        backward = self._flow.calc(gray, previous, None)  # current -> previous
        forward = self._flow.calc(previous, gray, None)
        where, ok = _consistent(forward, backward, self._grid)
        reliable = ok.astype(np.float32)
        if float(reliable.mean()) < self.min_reliable:  # a cut between shots of similar tones
            self.cuts += 1
            return None
        return Motion(where, reliable)


def stabilize(ab: np.ndarray, previous_ab: Optional[np.ndarray], motion: Optional[Motion],
              blend: float = DEFAULT_BLEND) -> np.ndarray:
    """ab (h, w, 2) blended with the previous output's ab carried by ``motion``, ``blend`` of it where reliable.

    Where the carried ab equals the prediction the result equals it exactly, so a still clip stays still.
    """
    if motion is None or previous_ab is None or blend == 0:
        return ab
    weight = (motion.reliable * np.float32(blend))[..., None]
    return ab + weight * (motion.warp(previous_ab) - ab)


# --- colorizing ----------------------------------------------------------------------------------------------

def _check_blend(blend: float) -> float:
    if not 0.0 <= blend < 1.0:
        raise ValueError(f"blend must be in [0, 1), got {blend}")
    return float(blend)


class _FrameColorizer:
    """The per-frame state of a clip: the tracker, the previous output's ab, the hints carried along, the reference
    photo (prepared on the first frame) whose matches give each frame hints of its own."""

    def __init__(self, colorizer: Colorizer, temporal: bool, blend: float, render_size: Optional[int],
                 intensity: float, hints: Optional[ImageLike], reference=None):
        self.colorizer, self.temporal, self.blend = colorizer, temporal, _check_blend(blend)
        self.render_size, self.intensity, self.hints = render_size, float(intensity), hints
        self.reference = reference
        if self.intensity < 0:
            raise ValueError("intensity must be at least 0")
        self.tracker = MotionTracker()
        self.previous_ab: Optional[np.ndarray] = None
        self.hint_maps: Optional[tuple[np.ndarray, np.ndarray]] = None
        self.frames = 0
        self.reliable = 0.0

    def predict(self, l_small: np.ndarray) -> np.ndarray:
        """The network's ab (h, w, 2) for L at the render resolution: intensity applied, the carried hints and the
        reference's matches in this frame spread (the carried hints win where both give one)."""
        maps = self.hint_maps
        if self.reference is not None:
            from .reference import Reference, merge_hints, prepare_reference, reference_hints

            if not isinstance(self.reference, Reference):  # once: every frame has the same size
                self.reference = prepare_reference(self.reference, l_small.shape)
            maps = merge_hints(maps, reference_hints(self.colorizer, l_small, self.reference))
        ab = self.colorizer.predict_ab_from_small(l_small, maps)
        if self.intensity != 1.0:
            ab = ab * np.float32(self.intensity)
        if maps is not None:
            from .hints import propagate

            ab = propagate(l_small, ab, *maps)
        return ab

    def __call__(self, l: np.ndarray) -> np.ndarray:
        """ab (H, W, 2) for the frame whose full-resolution L is ``l``."""
        l_small = self.colorizer.l_small(l, self.render_size)
        motion = self.tracker(l_small) if (self.temporal or self.hints is not None) else None
        if self.hints is not None:
            self._carry_hints(l, l_small, motion)
        ab = self.predict(l_small)
        if self.temporal:
            ab = stabilize(ab, self.previous_ab, motion, self.blend)
            self.previous_ab = ab
            self.reliable += float(motion.reliable.mean()) if motion is not None else 0.0
        self.frames += 1
        return upsample_ab(ab, l.shape)

    def _carry_hints(self, l: np.ndarray, l_small: np.ndarray, motion: Optional[Motion]) -> None:
        """Hints belong to the first frame; they travel with the content along the flow until a cut or occlusion."""
        from .hints import hints_at

        if self.frames == 0:
            size = self.hints.size if not isinstance(self.hints, np.ndarray) else self.hints.shape[1::-1]
            if tuple(size) != l.shape[::-1]:
                raise ValueError(f"hints must be an image of the frame's size, {l.shape[1]}x{l.shape[0]}, "
                                 f"got {size[0]}x{size[1]}")
            self.hint_maps = hints_at(self.hints, l_small.shape)
        elif self.hint_maps is not None:
            hint_ab, weight = self.hint_maps
            weight = motion.warp(weight) * motion.reliable if motion is not None else None  # None: a cut
            self.hint_maps = (motion.warp(hint_ab), weight) if weight is not None and weight.any() else None


def colorize_frames(colorizer: Colorizer, frames: Iterable[np.ndarray], temporal: bool = True,
                    blend: float = DEFAULT_BLEND, render_size: Optional[int] = None, intensity: float = 1.0,
                    hints: Optional[ImageLike] = None, reference=None) -> Iterator[np.ndarray]:
    """Colorize a sequence of frames ((H, W, 3) uint8 RGB, or (H, W) gray) one at a time; yields uint8 RGB.

    Each frame keeps its own L; with ``temporal`` its ab is stabilised (:func:`stabilize`). ``hints`` (an RGBA
    image of the frame size, see :meth:`Colorizer.__call__`) apply to the first frame and travel with the content;
    a ``reference`` photo (see :meth:`Colorizer.__call__`) gives every frame the colours it confidently matches.
    """
    state = _FrameColorizer(colorizer, temporal, blend, render_size, intensity, hints, reference)
    for rgb in frames:
        l = rgb_to_l(np.asarray(rgb))
        yield np.asarray(compose(l, state(l)))


# --- writing -------------------------------------------------------------------------------------------------

def _even(n: int) -> int:
    return max(2, n - n % 2)


class _Writer:
    """An H.264 MP4 on an open output container: frames at the source's timestamps, and the audio track."""

    def __init__(self, av, output, source, width: int, height: int, crf: int, preset: str):
        self.av, self.output = av, output
        video = source.streams.video[0]
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        self.stream = output.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        ctx = self.stream.codec_context
        ctx.color_range, ctx.colorspace, ctx.color_primaries, ctx.color_trc = 1, 1, 1, 1  # MPEG range, BT.709
        # Each frame keeps its source time, on the grid of the average rate: a constant-rate clip keeps its rate
        # exactly, a variable one its timing to within a frame, and the audio stays in sync.
        self.time_base = 1 / Fraction(rate)
        self.stream.time_base = ctx.time_base = self.time_base
        self.last_pts: Optional[int] = None
        self.audio_in = source.streams.audio[0] if source.streams.audio else None
        self.audio_out = self.audio_note = None
        if self.audio_in is not None:
            name = self.audio_in.codec_context.name
            if name in _MP4_AUDIO:
                self.audio_out = output.add_stream_from_template(self.audio_in)
                self.audio_note = f"copied ({name})"
            else:
                rate_hz = self.audio_in.codec_context.sample_rate or 48000
                self.audio_out = output.add_stream("aac", rate=rate_hz)
                self.audio_note = f"re-encoded as aac ({name})"
                self.audio_in.codec_context.thread_type = "NONE"

    def audio(self, packet) -> None:
        if self.audio_out is None or packet.dts is None:
            return
        if self.audio_note.startswith("copied"):
            packet.stream = self.audio_out
            self.output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder's sample count keeps the timeline; source pts may jump
            self.output.mux(self.audio_out.encode(frame))

    def video(self, rgb: np.ndarray, seconds: Optional[Fraction]) -> None:
        """Encode one frame shown at ``seconds`` (None: one frame after the last)."""
        frame = self.av.VideoFrame.from_ndarray(rgb[: self.stream.height, : self.stream.width], format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        pts = round(seconds / self.time_base) if seconds is not None else (self.last_pts or 0) + 1
        if self.last_pts is not None and pts <= self.last_pts:  # x264 needs increasing timestamps
            pts = self.last_pts + 1
        frame.pts, frame.time_base, self.last_pts = pts, self.time_base, pts
        self.output.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.output.mux(self.stream.encode())
        if self.audio_out is not None and not self.audio_note.startswith("copied"):
            self.output.mux(self.audio_out.encode())


def colorize_video(colorizer: Colorizer, src: PathLike, dst: PathLike, temporal: bool = True, *,
                   blend: float = DEFAULT_BLEND, render_size: Optional[int] = None, intensity: float = 1.0,
                   hints: Optional[ImageLike] = None, reference=None, max_seconds: Optional[float] = None,
                   max_megapixels: float = MAX_MEGAPIXELS, budget: Optional[VideoBudget] = None,
                   progress: Optional[Callable[[int, Optional[int]], None]] = None,
                   crf: int = 18, preset: str = "veryfast") -> VideoStats:
    """Colorize the clip ``src`` into the H.264 MP4 ``dst`` (frame timing and audio kept); returns :class:`VideoStats`.

    ``temporal=False`` colorizes each frame alone (the per-frame baseline). ``hints`` and ``reference``: see
    :func:`colorize_frames`. ``progress(done, total)`` is called
    after each frame (``total`` None when the header does not say). A clip over ``max_seconds``, with frames
    over ``max_megapixels``, or whose decoded frames exceed ``budget`` (counted as they are decoded; see
    :class:`VideoBudget`), or one that is not a video, damaged or truncated, raises :class:`VideoError`, and
    ``dst`` is then left as it was (written to a temporary file and renamed only when complete). Odd frame sizes
    lose their last row or column (H.264's 4:2:0 needs even sizes).
    """
    av = _av()
    _check_blend(blend)
    start = time.perf_counter()
    src = Path(src)
    if Path(dst).resolve() == src.resolve():
        raise ValueError(f"{dst}: the output would overwrite the input")
    stats: dict = {}

    def write(tmp: str) -> None:
        with _open(src) as source:
            info = _info(source, src)
            _check_limits(info, src, max_seconds, max_megapixels)
            if budget is not None:
                budget.check_header(info, src)
            state = _FrameColorizer(colorizer, temporal, blend, render_size, intensity, hints, reference)
            with av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"}) as output:
                writer: Optional[_Writer] = None
                pending: list = []  # audio demuxed before the first video frame sized the writer
                time_base = source.streams.video[0].time_base
                first_pts = shape = None
                frames = 0

                def audio(packet) -> None:
                    if writer is None:
                        pending.append(packet)
                    else:
                        writer.audio(packet)

                for _, frame in _decoded(source, src, info, audio, None, max_megapixels, budget):
                    rgb = _rgb(frame)
                    if writer is None:  # sized by the first frame, which a display matrix may have turned
                        shape = rgb.shape[:2]
                        writer = _Writer(av, output, source, _even(shape[1]), _even(shape[0]), crf, preset)
                        for packet in pending:
                            writer.audio(packet)
                        pending.clear()
                    elif rgb.shape[:2] != shape:
                        raise VideoError(f"{src}: the frame size changes within the clip")
                    if max_seconds is not None and frame.pts is not None and time_base:
                        first_pts = frame.pts if first_pts is None else first_pts
                        if float((frame.pts - first_pts) * time_base) >= max_seconds:
                            raise VideoError(f"{src}: longer than {max_seconds:g} s; at most that is accepted")
                    l = rgb_to_l(rgb)
                    seconds = frame.pts * frame.time_base if frame.pts is not None and frame.time_base else None
                    writer.video(np.asarray(compose(l, state(l))), seconds)
                    frames += 1
                    if progress is not None:
                        progress(frames, info.frames)
                writer.close()
            width, height = writer.stream.width, writer.stream.height
            stats.update(frames=frames, fps=info.fps, width=width, height=height, audio=writer.audio_note,
                         cuts=state.tracker.cuts, reliable=state.reliable / max(frames, 1), notes=[],
                         temporal=temporal and not state.tracker.too_small)
            if (height, width) != shape:
                stats["notes"].append(f"cropped to {width}x{height}: H.264's 4:2:0 needs even sizes")
            if state.tracker.too_small:
                stats["notes"].append(_TOO_SMALL)

    try:
        atomic_write(dst, write)
    except av.error.FFmpegError as exc:  # the encoder or the output file failed, not the source
        raise OSError(f"cannot write {dst}: {_reason(exc)}") from None
    return VideoStats(frames=stats["frames"], fps=stats["fps"], width=stats["width"], height=stats["height"],
                      audio=stats["audio"], temporal=stats["temporal"], blend=blend if stats["temporal"] else 0.0,
                      scene_cuts=stats["cuts"], reliable=stats["reliable"], seconds=time.perf_counter() - start,
                      notes=stats["notes"])


# --- temporal measures ---------------------------------------------------------------------------------------

def _metric_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense flow first -> second (uint8 gray, full resolution) for the measures: Farneback's, a different
    estimator from the stabiliser's DIS, so the measure does not share the stabiliser's errors."""
    return cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 4, 21, 3, 5, 1.1, 0)


def _non_occluded(forward: np.ndarray, backward: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(map, mask) on the first frame's grid, as Lai et al.: the forward flow as a map into the second frame, and
    where the forward-backward check holds, off motion boundaries (|grad flow|^2 <= 0.01 |flow|^2 + 0.002)."""
    where, ok = _consistent(backward, forward, grid)  # roles swapped: map first -> second
    du = np.zeros_like(forward)
    dv = np.zeros_like(forward)
    du[:, :-1] = forward[:, :-1] - forward[:, 1:]
    dv[:-1] = forward[:-1] - forward[1:]
    boundary = (du**2 + dv**2).sum(axis=2) > 0.01 * (forward**2).sum(axis=2) + 0.002
    return where, ok & ~boundary


def _histograms(rgb: np.ndarray) -> np.ndarray:
    """(3, 256) float64: each channel's normalised histogram."""
    return np.stack([cv2.calcHist([rgb], [c], None, [256], [0, 256]).ravel() for c in range(3)]) / (
        rgb.shape[0] * rgb.shape[1])


def _js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) of histogram rows."""
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log(a / m), 0.0).sum(axis=-1)

    return 0.5 * kl(p) + 0.5 * kl(q)


_CDC_STEPS = (1, 2, 4)


def _cdc_from_histograms(histograms: Sequence[np.ndarray], shots: Optional[Sequence[int]] = None) -> float:
    """CDC from per-frame (3, 256) histograms: the mean over steps 1, 2, 4 of the mean JS over frame pairs and
    channels (TCVC's ``calculate_folders_multiple``, equal weights). With ``shots`` (each frame's shot number),
    pairs that straddle a cut are left out."""
    shots = shots if shots is not None else [0] * len(histograms)
    parts = []
    for step in _CDC_STEPS:
        pairs = [_js(histograms[i], histograms[i + step]).mean() for i in range(len(histograms) - step)
                 if shots[i] == shots[i + step]]
        if pairs:
            parts.append(float(np.mean(pairs)))
    return float(np.mean(parts)) if parts else math.nan


class TemporalScores:
    """Warp error and CDC of several outputs of one clip, streamed: ``add(gray, {"name": rgb, ...})`` per frame.

    The flow and occlusion come from the input clip's gray frames (full resolution), as Lai et al. prescribe.
    Frame pairs across a scene cut (``add(..., cut=True)`` on the first frame after it) are left out of both
    measures: they compare two shots, not one shot over time.
    Besides Lai's warp error on RGB, ``warp_error_ab`` is the same on the output's a and b (Lab units): every
    output shares the input's L, whose own warp error (interpolating fine detail) is a floor under the RGB one.
    """

    def __init__(self):
        self._previous_gray: Optional[np.ndarray] = None
        self._previous: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._errors: dict[str, list[tuple[float, float]]] = {}
        self._histograms: dict[str, list[np.ndarray]] = {}
        self._shots: list[int] = []
        self._grid: Optional[np.ndarray] = None

    def add(self, gray: np.ndarray, outputs: dict[str, np.ndarray], cut: bool = False) -> None:
        """One frame: ``gray`` (H, W) uint8 of the input, ``outputs`` name -> (H, W, 3) uint8 RGB; ``cut``: the
        first frame of a new shot."""
        self._shots.append((self._shots[-1] + int(cut)) if self._shots else 0)
        current = {}
        for name, rgb in outputs.items():
            self._histograms.setdefault(name, []).append(_histograms(rgb))
            rgb = rgb.astype(np.float32) / 255.0
            current[name] = (rgb, np.ascontiguousarray(rgb_to_lab(rgb)[..., 1:]))
        if self._previous_gray is not None and not cut:
            if self._grid is None:
                self._grid = _grid(*gray.shape)
            forward = _metric_flow(self._previous_gray, gray)
            backward = _metric_flow(gray, self._previous_gray)
            where, mask = _non_occluded(forward, backward, self._grid)
            if not mask.any():  # nothing can be followed (a cut): Lai et al. then average over every pixel
                mask = np.ones_like(mask)
            for name, pair in current.items():
                errors = []
                for now, before in zip(pair, self._previous[name]):
                    ahead = cv2.remap(now, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                    errors.append(float(((ahead - before)[mask] ** 2).mean()))
                self._errors.setdefault(name, []).append(tuple(errors))
        self._previous_gray, self._previous = gray, current

    def result(self) -> dict[str, dict[str, float]]:
        """name -> {"warp_error": RGB in [0, 1], "warp_error_ab": Lab units (both squared, mean over frame pairs),
        "cdc": ...}."""
        out = {}
        for name, hist in self._histograms.items():
            errors = np.array(self._errors.get(name) or [(math.nan, math.nan)])
            out[name] = {"warp_error": float(errors[:, 0].mean()), "warp_error_ab": float(errors[:, 1].mean()),
                         "cdc": _cdc_from_histograms(hist, self._shots)}
        return out


def warp_error(frames: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """Lai et al.'s warp error of ``outputs`` (uint8 RGB); flow and occlusion come from the input ``frames``."""
    scores = TemporalScores()
    for frame, out in zip(frames, outputs):
        scores.add(_gray8(rgb_to_l(np.asarray(frame))), {"out": np.asarray(out)})
    return scores.result()["out"]["warp_error"]


def cdc(frames: Sequence[np.ndarray]) -> float:
    """Colour distribution consistency of uint8 RGB frames: JS divergence of channel histograms 1, 2, 4 apart."""
    return _cdc_from_histograms([_histograms(np.asarray(f)) for f in frames])


# --- evaluation ----------------------------------------------------------------------------------------------

def evaluate_video(colorizer: Colorizer, path: PathLike, blends: Sequence[float] = (DEFAULT_BLEND,),
                   render_size: Optional[int] = None, max_frames: Optional[int] = None, progress: bool = True,
                   budget: Optional[VideoBudget] = None) -> dict:
    """Colorize a colour clip from its gray version per frame (blend 0) and stabilised at each of ``blends``.

    Scores each against the original frames: PSNR, SSIM and colourfulness per frame (the photos' scorer, means
    over frames) and the warp error and CDC over the clip, beside the gray baseline and the original's own
    temporal measures. The network runs once per frame for all blends. A clip over ``budget`` raises
    :class:`VideoError` (the first ``max_frames`` frames are counted, when given).
    """
    from tqdm.auto import tqdm

    from .evaluation import score_images, summarize

    blends = [0.0] + [_check_blend(b) for b in blends if b != 0.0]
    names = {b: ("per-frame" if b == 0 else f"blend {b:g}") for b in blends}
    info = probe_video(path)
    base = _FrameColorizer(colorizer, temporal=False, blend=0.0, render_size=render_size, intensity=1.0, hints=None)
    tracker = MotionTracker()
    previous = {b: None for b in blends}
    records = {b: [] for b in blends}
    reliable = []
    scores = TemporalScores()
    total = min(info.frames or max_frames or 0, max_frames or info.frames or 0) or None
    frames = 0
    for truth in tqdm(read_frames(path, max_frames, budget=budget), total=total, desc="evaluate-video", unit="frame",
                      disable=not progress):
        l = rgb_to_l(truth)
        l_small = colorizer.l_small(l, render_size)
        ab = base.predict(l_small)
        cuts = tracker.cuts
        motion = tracker(l_small)
        reliable.append(float(motion.reliable.mean()) if motion is not None else 0.0)
        gray = gray_display(l)
        outputs = {"gray": gray, "ground truth": truth}
        for b in blends:
            previous[b] = stabilize(ab, previous[b], motion, b)
            out = np.asarray(compose(l, upsample_ab(previous[b], l.shape)))
            records[b].append(score_images(out, gray, truth))
            outputs[names[b]] = out
        scores.add(_gray8(l), outputs, cut=tracker.cuts > cuts)
        frames += 1
    temporal = scores.result()
    runs = []
    for b in blends:
        summary = summarize(records[b])
        runs.append({"name": names[b], "blend": b, **summary["model"], **temporal[names[b]]})
    first = summarize(records[blends[0]])
    return {
        "clip": str(path), "frames": frames, "fps": info.fps, "width": info.width, "height": info.height,
        "render_size": int(render_size or colorizer.render_size), "weights": colorizer.info.get("path"),
        "scene_cuts": tracker.cuts, "reliable": float(np.mean(reliable)),
        "notes": [_TOO_SMALL] if tracker.too_small else [],  # the stabilised runs are then the per-frame one
        "gray": {**first["gray"], **temporal["gray"]},
        "ground_truth": {**first["ground_truth"], **temporal["ground truth"]},
        "runs": runs,
    }


def format_video_table(report: dict, title: str = "") -> str:
    """A plain-text table of :func:`evaluate_video`'s report."""
    lines = [title] if title else []
    lines.append(f"{'':14}{'PSNR (dB)':>10}{'SSIM':>8}{'colourful':>10}{'warp x1e3':>10}{'warp ab':>9}"
                 f"{'CDC x1e3':>10}")
    rows = [(r["name"], r) for r in report["runs"]] + [("gray", report["gray"])]
    for name, r in rows:
        ssim = "n/a" if r["ssim"] is None else f"{r['ssim']:.4f}"  # frames under 3 pixels a side have none
        lines.append(f"{name:14}{r['psnr']:>10.2f}{ssim:>8}{r['colorfulness']:>10.1f}"
                     f"{1e3 * r['warp_error']:>10.3f}{r['warp_error_ab']:>9.3f}{1e3 * r['cdc']:>10.3f}")
    gt = report["ground_truth"]
    lines.append(f"{'original':14}{'':>10}{'':>8}{gt['colorfulness']:>10.1f}{1e3 * gt['warp_error']:>10.3f}"
                 f"{gt['warp_error_ab']:>9.3f}{1e3 * gt['cdc']:>10.3f}")
    lines.append(f"{report['frames']} frames, {report['width']}x{report['height']}, {report['fps']:.3g} fps; "
                 f"{report['scene_cuts']} scene cuts; flow reliable on {100 * report['reliable']:.0f} % of pixels")
    return "\n".join(lines)
