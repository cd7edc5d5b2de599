"""Video: clips made here (tiny, in tmp folders) through the library and the command line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage import data

from colorization import load_colorizer
from colorization.video import (DEFAULT_BLEND, TemporalScores, VideoBudget, VideoError, cdc, colorize_frames,
                                colorize_video, evaluate_video, probe_video, read_frames, warp_error)

W, H = 160, 96


@pytest.fixture(scope="module")
def shipped():
    """The default shipped model: its colours change with the picture, as a trained model's do."""
    return load_colorizer(device="cpu")


def coffee(width: int = 320) -> np.ndarray:
    photo = data.coffee()  # 400x600 RGB, ships with scikit-image
    return cv2.resize(photo, (width, round(width * photo.shape[0] / photo.shape[1])), interpolation=cv2.INTER_AREA)


def pan_frames(n: int = 12, step: float = 2.5) -> list[np.ndarray]:
    """A camera sliding right over the coffee photo, sub-pixel steps."""
    photo = coffee().astype(np.float32)
    frames = []
    for t in range(n):
        m = np.float32([[1, 0, -20 - step * t], [0, 1, -30]])
        frames.append(np.clip(cv2.warpAffine(photo, m, (W, H), flags=cv2.INTER_LINEAR), 0, 255).astype(np.uint8))
    return frames


def write_clip(path: Path, frames, rate=24, audio: str | None = None, codec: str = "libx264",
               options: dict | None = None) -> Path:
    """Frames (uint8 RGB) to a clip; ``audio``: an audio codec for a 0.5-s-per-12-frames tone, or None."""
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height = frames[0].shape[1], frames[0].shape[0]
        video.pix_fmt = "yuv420p"
        sound = out.add_stream(audio, rate=16000, layout="mono") if audio else None
        per_frame = round(16000 / float(rate))
        for i, rgb in enumerate(frames):
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            if sound is not None:
                fmt = sound.codec_context.format.name
                t = (np.arange(per_frame) + i * per_frame) / 16000
                wave = 0.2 * np.sin(2 * np.pi * 440 * t)
                pcm = fmt.startswith("s16")
                samples = (wave * 32767).astype(np.int16)[None] if pcm else wave.astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(samples, format=fmt, layout="mono")
                chunk.sample_rate = 16000
                out.mux(sound.encode(chunk))
        out.mux(video.encode())
        if sound is not None:
            out.mux(sound.encode())
    return path


def streams(path: Path) -> dict:
    with av.open(str(path)) as c:  # a stream's fields are read while its container is open
        v = c.streams.video[0]
        video = {"rate": v.average_rate, "codec": v.codec_context.name, "size": (v.width, v.height)}
        video["frames"] = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        a = c.streams.audio[0] if c.streams.audio else None
        audio_seconds = float(sum(p.duration * p.time_base for p in c.demux(a) if p.duration)) if a else 0.0
        return {**video, "audio": a.codec_context.name if a else None, "audio_seconds": audio_seconds}


def test_a_repeated_frame_comes_out_identical(shipped):
    frame = pan_frames(1)[0]
    outputs = list(colorize_frames(shipped, [frame] * 6))
    assert all(np.array_equal(out, outputs[0]) for out in outputs)
    assert outputs[0].shape == frame.shape and outputs[0].dtype == np.uint8
    assert not np.array_equal(outputs[0][..., 0], outputs[0][..., 1])  # coloured, not gray
    assert cdc(outputs) == 0.0 and warp_error([frame] * 6, outputs) < 1e-6  # the measuring flow is not exactly 0


def test_stabilised_colours_follow_a_pan(shipped):
    """The per-frame baseline flickers; stabilised, the colour warp error falls by more than half."""
    frames = pan_frames(12)
    scores = TemporalScores()
    for frame, base, stable in zip(frames, colorize_frames(shipped, frames, temporal=False),
                                   colorize_frames(shipped, frames, temporal=True)):
        scores.add(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), {"base": base, "stable": stable})
    r = scores.result()
    assert r["stable"]["warp_error"] < r["base"]["warp_error"]
    assert r["stable"]["warp_error_ab"] < 0.5 * r["base"]["warp_error_ab"]
    assert r["stable"]["cdc"] < r["base"]["cdc"]


def test_a_scene_cut_starts_afresh(shipped):
    """The first frame after a cut is the per-frame colorization exactly: nothing of the other shot leaks in."""
    first = pan_frames(4)
    other = cv2.resize(data.astronaut(), (W, H), interpolation=cv2.INTER_AREA)
    frames = first + [other, other]
    stable = list(colorize_frames(shipped, frames))
    alone = next(colorize_frames(shipped, [other], temporal=False))
    assert np.array_equal(stable[4], alone)
    assert not np.array_equal(stable[3], next(colorize_frames(shipped, [first[3]], temporal=False)))


def test_frame_count_rate_and_audio_are_kept(shipped, tmp_path):
    src = write_clip(tmp_path / "in.mp4", pan_frames(15), rate=Fraction(30000, 1001), audio="aac")
    dst = tmp_path / "out" / "colour.mp4"
    seen = []
    stats = colorize_video(shipped, src, dst, progress=lambda done, total: seen.append((done, total)))
    got, want = streams(dst), streams(src)
    assert got["frames"] == want["frames"] == stats.frames == 15
    assert got["rate"] == Fraction(30000, 1001) and got["codec"] == "h264" and got["size"] == (W, H)
    assert got["audio"] == "aac" and stats.audio == "copied (aac)"
    assert got["audio_seconds"] == pytest.approx(want["audio_seconds"], abs=0.05)
    assert seen[-1] == (15, 15) and len(seen) == 15
    assert stats.temporal and stats.blend == DEFAULT_BLEND and 0.5 < stats.reliable <= 1.0
    frames = list(read_frames(dst))
    assert len(frames) == 15 and frames[0].shape == (H, W, 3)
    assert np.abs(frames[0][..., 0].astype(int) - frames[0][..., 2]).mean() > 2  # it is in colour


def test_pcm_audio_is_reencoded_and_odd_sizes_cropped(shipped, tmp_path):
    src = write_clip(tmp_path / "in.mkv", pan_frames(6), rate=12, audio="pcm_s16le")
    stats = colorize_video(shipped, src, tmp_path / "out.mp4", temporal=False)
    got = streams(tmp_path / "out.mp4")
    assert got["audio"] == "aac" and stats.audio == "re-encoded as aac (pcm_s16le)"
    assert got["frames"] == 6 and got["rate"] == 12
    assert stats.blend == 0.0 and not stats.temporal

    with av.open(str(tmp_path / "odd.mkv"), "w") as out:  # an odd-sized source: 4:4:4 lossless can hold it
        v = out.add_stream("ffv1", rate=12)
        v.width, v.height, v.pix_fmt = 159, 95, "yuv444p"
        for f in pan_frames(6):
            out.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:95, :159]), format="rgb24")))
        out.mux(v.encode())
    stats = colorize_video(shipped, tmp_path / "odd.mkv", tmp_path / "odd.mp4")
    assert streams(tmp_path / "odd.mp4")["size"] == (158, 94) and "cropped to 158x94" in stats.notes[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bad_input_is_a_clear_error_and_leaves_no_output(shipped, tmp_path):
    good = write_clip(tmp_path / "good.mp4", pan_frames(24), options={"movflags": "+faststart"})
    raw = good.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(raw[: len(raw) * 2 // 3])
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.mp4").write_bytes(b"an older result")
    for name, words in (("truncated.mp4", ("truncated", "damaged")), ("text.mp4", ("not a video",))):
        with pytest.raises(VideoError) as info:
            colorize_video(shipped, tmp_path / name, out / "keep.mp4")
        assert name in str(info.value) and any(w in str(info.value) for w in words), info.value
        with pytest.raises(VideoError):
            colorize_video(shipped, tmp_path / name, out / "new.mp4")
    assert _leftovers(out) == ["keep.mp4"] and (out / "keep.mp4").read_bytes() == b"an older result"
    with pytest.raises(FileNotFoundError):
        colorize_video(shipped, tmp_path / "missing.mp4", out / "x.mp4")
    with pytest.raises(VideoError, match="at most 0.5 s"):
        colorize_video(shipped, good, out / "long.mp4", max_seconds=0.5)
    with pytest.raises(VideoError, match="megapixels"):
        colorize_video(shipped, good, out / "big.mp4", max_megapixels=0.01)
    assert _leftovers(out) == ["keep.mp4"]
    assert isinstance(VideoError("x"), ValueError)  # the CLI's and the app's ImageError handling covers it


def tiny_frames(n: int) -> list[np.ndarray]:
    """``n`` frames of 16 x 16: almost no pixels, but each costs the network a pass."""
    return [cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in pan_frames(n)]


def test_a_clip_is_bounded_by_the_work_decoded_not_by_its_header(shipped, tmp_path):
    """Issue 26: 100,000 frames of 16 x 16 at 5,000 frames/s last 20 s, and a raw H.264 stream has no duration, so
    a bound on seconds let both through. Frames and their pixels are counted as they are decoded: a clip over the
    budget is refused at once when its header says so, else when the budget is spent, with one message and no
    output file."""
    frames = tiny_frames(30)
    fast = write_clip(tmp_path / "fast.mkv", frames, rate=5000)
    raw = write_clip(tmp_path / "raw.h264", frames)
    assert probe_video(raw).seconds is None and probe_video(raw).frames is None  # nothing to refuse it by
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.mp4").write_bytes(b"an older result")
    done = []

    def progress(frames: int, total) -> None:
        done.append(frames)

    budget = VideoBudget(frames=20)
    with pytest.raises(VideoError, match=r"fast\.mkv: about \d+ frames \(0\.0 s at 5000 frames/s\); at most 20 frames"):
        colorize_video(shipped, fast, out / "keep.mp4", max_seconds=20, budget=budget, progress=progress)
    assert done == []  # refused before any work
    with pytest.raises(VideoError, match=r"raw\.h264: more than 20 frames; at most 20 are accepted$"):
        colorize_video(shipped, raw, out / "keep.mp4", max_seconds=20, budget=budget, progress=progress)
    assert max(done) == 20  # stopped when the budget was spent
    with pytest.raises(VideoError, match=r"raw\.h264: its first 11 frames already make 0\.00282 megapixels; "
                                         r"at most 0\.00256 megapixels"):
        colorize_video(shipped, raw, out / "new.mp4", budget=VideoBudget(megapixels=10 * 256 / 1e6))
    with pytest.raises(VideoError, match="more than 20 frames"):
        list(read_frames(raw, budget=budget))
    assert len(list(read_frames(raw, max_frames=20, budget=budget))) == 20  # a prefix within the budget is fine
    assert _leftovers(out) == ["keep.mp4"] and (out / "keep.mp4").read_bytes() == b"an older result"

    within = VideoBudget(frames=30, megapixels=30 * 256 / 1e6)
    for clip in (fast, raw):
        stats = colorize_video(shipped, clip, out / f"{clip.stem}.mp4", budget=within)
        assert stats.frames == 30 and streams(out / f"{clip.stem}.mp4")["frames"] == 30


def test_a_video_budget_is_positive_and_read_from_the_environment(monkeypatch):
    assert VideoBudget.from_environment(600, 360.0) == VideoBudget(600, 360.0)
    monkeypatch.setenv("COLORIZE_MAX_VIDEO_FRAMES", "20")
    monkeypatch.setenv("COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS", "1.5")
    budget = VideoBudget.from_environment(600, 360.0, name_variables=True)
    assert (budget.frames, budget.megapixels, budget.name_variables) == (20, 1.5, True)
    for bad in ("0", "-5", "nan", "many"):
        monkeypatch.setenv("COLORIZE_MAX_VIDEO_FRAMES", bad)
        with pytest.raises(ValueError, match="COLORIZE_MAX_VIDEO_FRAMES must be a positive number"):
            VideoBudget.from_environment(600, 360.0)
    for bad in ({"frames": 0}, {"megapixels": math.inf}, {"megapixels": -1.0}):
        with pytest.raises(ValueError, match="must be a positive number"):
            VideoBudget(**bad)


def test_cli_stops_a_clip_over_its_budget_with_one_line(tmp_path, weights_file):
    """The command line's budget is larger than the app's; the same variables set it."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(folder / "fast.mkv", tiny_frames(30), rate=5000)
    write_clip(folder / "raw.h264", tiny_frames(30))
    write_clip(folder / "short.mp4", tiny_frames(10))
    r = run("colorize", str(folder), "-o", str(tmp_path / "out"), "--weights", str(weights_file),
            env={"COLORIZE_MAX_VIDEO_FRAMES": "20"})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and "fast.mkv" in errors[0] and "raw.h264: more than 20 frames" in errors[1], errors
    assert all(e.endswith("(COLORIZE_MAX_VIDEO_FRAMES raises this)") for e in errors)
    assert _leftovers(tmp_path / "out") == ["short.mp4"] and "colorized 1 of 3 clips" in r.stdout
    r = run("evaluate-video", str(folder / "raw.h264"), "--weights", str(weights_file),
            env={"COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS": "0.001"})
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "raw.h264: its first 4 frames already make" in errors[0], errors
    assert errors[0].endswith("at most 0.001 megapixels of frames are accepted (COLORIZE_MAX_VIDEO_TOTAL_MEGAPIXELS "
                              "raises this)")
    r = run("colorize", str(folder), "-o", str(tmp_path / "out2"), "--weights", str(weights_file),
            env={"COLORIZE_MAX_VIDEO_FRAMES": "lots"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "COLORIZE_MAX_VIDEO_FRAMES" in r.stderr, r.stderr
    assert not (tmp_path / "out2").exists()


def test_cli_names_a_clip_too_long_for_the_render_size_memory(tmp_path, weights_file):
    """A clip whose frames at the render size would need more activation memory than allowed is refused by name, with
    no output, and the batch goes on (issue 26, item 8)."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(folder / "strip.mp4", [np.ascontiguousarray(cv2.resize(f, (400, 100))) for f in pan_frames(3)])
    write_clip(folder / "square.mp4", [np.ascontiguousarray(f[:96, :96]) for f in pan_frames(3)])
    r = run("colorize", str(folder), "-o", str(tmp_path / "out"), "--weights", str(weights_file),
            "--render-size", "128", env={"COLORIZE_MAX_ACTIVATION_GB": "0.03"})
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(errors) == 1 and "strip.mp4: at render size 128 the network would see 512x128" in errors[0], errors
    assert _leftovers(tmp_path / "out") == ["square.mp4"] and "colorized 1 of 2 clips" in r.stdout


def test_the_flow_never_crashes_on_small_or_thin_frames():
    """DIS raised on frames under 8 pixels a side and crashed the process on short wide ones (16 x 256): such
    frames get no motion and ``too_small``; every other size gets a flow that follows a one-pixel pan."""
    script = """
import numpy as np
from colorization.video import MotionTracker
for h, w in [(1, 256), (2, 1024), (7, 100), (8, 22), (256, 4), (8, 23), (16, 256), (256, 16), (12, 91), (40, 40)]:
    y, x = np.mgrid[:h, :w + 1].astype(np.float32)
    pattern = 50 + 30 * np.sin(x / 3) + 10 * np.cos(y / 2)
    tracker = MotionTracker()
    tracker(np.ascontiguousarray(pattern[:, 1:]))
    motion = tracker(np.ascontiguousarray(pattern[:, :-1]))  # the content moved one pixel right
    followed = -1.0 if motion is None else float(np.median(motion.map[..., 0] - np.arange(w)))
    print(h, w, tracker.too_small, followed)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]  # -11: a segmentation fault
    results = {(int(h), int(w)): (small == "True", float(dx))
               for h, w, small, dx in map(str.split, done.stdout.splitlines())}
    assert len(results) == 10
    for (h, w), (small, dx) in results.items():
        assert small == (min(h, w) < 8 or max(h, w) < 23), (h, w)
        if not small:  # each pixel was one to the left in the previous frame
            assert abs(dx + 1) < 0.25, (h, w, dx)


def test_cli_colorizes_and_evaluates_thin_clips(tmp_path, weights_file):
    """At render size 64, 1200 x 8 frames are 256 x 2 (too thin for the flow: colorized frame by frame, with a
    warning) and 64 x 4 ones 256 x 16 (where DIS crashed the process): both work, without a traceback."""
    y, x = np.mgrid[:8, :1210]
    band = np.dstack([128 + 100 * np.sin(x / 9), 128 + 60 * np.cos(y + x / 5), 90 + 0 * x]).astype(np.uint8)
    thin = write_clip(tmp_path / "thin.mp4", [np.ascontiguousarray(band[:, i : i + 1200]) for i in range(4)])
    short = write_clip(tmp_path / "short.mp4", [np.ascontiguousarray(band[:4, i : i + 64]) for i in range(4)])
    r = run("colorize", str(thin), str(short), "-o", str(tmp_path / "out"), "--weights", str(weights_file))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "thin.mp4" in r.stdout and "per frame" in r.stdout.split("thin.mp4 ->")[1].splitlines()[0]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "thin.mp4" in warnings[0] and "too thin" in warnings[0], r.stderr
    assert [streams(tmp_path / "out" / name)["frames"] for name in ("thin.mp4", "short.mp4")] == [4, 4]
    r = run("evaluate-video", str(thin), str(short), "--weights", str(weights_file), "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    thin_report, short_report = json.loads((tmp_path / "r.json").read_text())
    assert thin_report["frames"] == 4 and thin_report["notes"] and thin_report["reliable"] == 0
    assert short_report["frames"] == 4 and not short_report["notes"] and short_report["reliable"] > 0


def test_probe_reads_the_header(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", pan_frames(10), rate=10, audio="aac")
    info = probe_video(clip)
    assert (info.width, info.height, info.frames, info.codec, info.audio) == (W, H, 10, "h264", "aac")
    assert info.fps == 10 and info.seconds == pytest.approx(1.0, abs=0.05)


def test_hints_on_the_first_frame_travel_with_the_content(shipped):
    from colorization.hints import hint_image

    frames = pan_frames(10, step=3.0)
    x, y = 100, 40  # a spot that moves 3 px left per frame
    hints = hint_image([(x, y, (255, 0, 0), 4)], (W, H))
    hinted = list(colorize_frames(shipped, frames, hints=hints))
    plain = list(colorize_frames(shipped, frames))

    def redness(rgb, px):
        return float(rgb[y - 2 : y + 3, px - 2 : px + 3, 0].mean() - rgb[y - 2 : y + 3, px - 2 : px + 3, 1].mean())

    moved = x - 27  # where the spot is in the last frame
    assert redness(hinted[-1], moved) > redness(plain[-1], moved) + 20
    assert redness(hinted[-1], x) - redness(plain[-1], x) < redness(hinted[-1], moved) - redness(plain[-1], moved)


def test_evaluate_video_reports_both_runs_beside_gray(shipped, tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", pan_frames(8))
    report = evaluate_video(shipped, clip, blends=[0.5, DEFAULT_BLEND], progress=False)
    assert report["frames"] == 8 and [r["blend"] for r in report["runs"]] == [0.0, 0.5, DEFAULT_BLEND]
    base, stable = report["runs"][0], report["runs"][-1]
    for part in (base, stable, report["gray"]):
        assert set(part) >= {"psnr", "ssim", "colorfulness", "warp_error", "warp_error_ab", "cdc"}
    assert stable["warp_error_ab"] < base["warp_error_ab"] and report["gray"]["colorfulness"] < 1.0
    assert report["ground_truth"]["colorfulness"] > 10 and math.isfinite(report["ground_truth"]["cdc"])


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m colorization ...`` as a user runs it, from a folder that is not the repository; ``env``: variables
    added to the environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "colorization", *args], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir(), timeout=600)


def test_cli_colorizes_clips_and_photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(folder / "clip.mp4", pan_frames(6), rate=12, audio="aac")
    cv2.imwrite(str(folder / "photo.png"), pan_frames(1)[0][..., ::-1])
    (tmp_path / "fake.mov").write_text("not a video")
    r = run("colorize", str(folder), str(tmp_path / "fake.mov"), "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and "fake.mov" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "photo.png"]
    assert "stabilised" in r.stdout and "colorized 1 of 2 clips" in r.stdout
    got = streams(tmp_path / "out" / "clip.mp4")
    assert got["frames"] == 6 and got["rate"] == 12 and got["audio"] == "aac"

    r = run("colorize", str(folder / "clip.mp4"), "-o", str(tmp_path / "base"), "--no-temporal")
    assert r.returncode == 0, r.stderr
    assert "per frame" in r.stdout and streams(tmp_path / "base" / "clip.mp4")["frames"] == 6


def test_cli_evaluate_video(tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", pan_frames(8))
    r = run("evaluate-video", str(clip), "--json", str(tmp_path / "r.json"), "--blend", "0.5", "0.9")
    assert r.returncode == 0, r.stderr
    assert "per-frame" in r.stdout and "blend 0.9" in r.stdout and "CDC" in r.stdout
    (report,) = json.loads((tmp_path / "r.json").read_text())
    assert [run["blend"] for run in report["runs"]] == [0.0, 0.5, 0.9]
    r = run("evaluate-video", str(clip), "--blend", "1.5")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "blend" in r.stderr


def test_a_reference_photo_colours_every_frame_of_a_clip(shipped):
    """Issue 28: one reference for the whole clip; a reference of the same scene brings every frame closer to the
    true colours, and the clip stays steady."""
    from PIL import Image

    frames = pan_frames(6)
    gray = [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1) for f in frames]
    # The same scene, mirrored and at 80 %, as evaluate --reference same makes it
    reference = Image.fromarray(frames[0]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((128, 77))
    plain = list(colorize_frames(shipped, gray))
    steered = list(colorize_frames(shipped, gray, reference=reference))
    error = [np.mean([np.abs(o.astype(np.float32) - f).mean() for o, f in zip(out, frames)]) for out in (plain, steered)]
    assert error[1] < error[0] - 1, error
    assert cdc(steered) < 2 * cdc(plain) + 1e-3  # the matches of each frame do not make it flicker
