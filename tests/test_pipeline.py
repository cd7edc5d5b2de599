import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorization import ImageError, read_image
from colorization.color import rgb_to_lab
from colorization.pipeline import MAX_ASPECT, prepare, render_shape


def _l(img: Image.Image) -> np.ndarray:
    return rgb_to_lab(np.asarray(img.convert("RGB"), dtype=np.float32) / 255)[..., 0]


def test_real_photo_keeps_its_size_and_its_l(colorizer, eval_photos):
    img = read_image(eval_photos[0])
    out = colorizer(img, render_size=128)
    assert out.size == img.size and out.mode == "RGB"
    # L comes from the input at full resolution; only uint8 rounding separates them.
    assert np.abs(_l(out) - _l(img)).mean() < 0.5
    assert np.abs(_l(out) - _l(img)).max() < 3.0


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "I", "1"])
def test_every_pil_mode(colorizer, mode):
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 45, 3), dtype=np.uint8))
    if mode in ("I;16", "I"):
        img = Image.fromarray((np.linspace(0, 65535, 30 * 45).reshape(30, 45)).astype(np.uint16))
        img = img if mode == "I;16" else img.convert("I")
    else:
        img = base.convert(mode)
    out = colorizer(img)
    assert out.size == (45, 30)
    assert out.mode == ("RGBA" if mode in ("LA", "RGBA") else "RGB")


def test_sixteen_bit_input_uses_its_full_range(colorizer):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    out = np.asarray(colorizer(Image.fromarray(ramp)))
    assert out.min() < 10 and out.max() > 245  # not clipped to white or crushed to black


def test_alpha_is_kept(colorizer):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = 120
    rgba[..., 3] = np.linspace(0, 255, 30).astype(np.uint8)
    out = colorizer(Image.fromarray(rgba, "RGBA"))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], rgba[..., 3])


def test_numpy_arrays(colorizer):
    for arr in [np.zeros((10, 12), np.uint8), np.full((10, 12, 3), 0.5, np.float32),
                np.zeros((10, 12, 4), np.uint16)]:
        assert colorizer(arr).size == (12, 10)
    with pytest.raises(ImageError, match="shape"):
        colorizer(np.zeros((4, 4, 5), np.uint8))


def test_one_pixel_image(colorizer):
    assert colorizer(Image.new("L", (1, 1), 128)).size == (1, 1)


def test_an_interrupted_batch_leaves_no_half_written_png(colorizer, tmp_path, monkeypatch):
    """Ctrl-C while a PNG is being written: the earlier output stays whole and no partial file is left."""
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (120, 90, 60)).save(photo)
    out = tmp_path / "out"
    assert [p for _, p in colorizer.colorize_files([photo], out, progress=False)] == [out / "photo.png"]
    before = (out / "photo.png").read_bytes()

    def interrupted(image, fp, filename):  # SIGINT after the first bytes: PIL removes its file only on Exception
        fp.write(b"\x89PNG\r\n\x1a\n")
        raise KeyboardInterrupt

    monkeypatch.setitem(Image.SAVE, "PNG", interrupted)
    with pytest.raises(KeyboardInterrupt):
        list(colorizer.colorize_files([photo], out, progress=False))
    assert sorted(p.name for p in out.iterdir()) == ["photo.png"]
    assert (out / "photo.png").read_bytes() == before


def test_a_photo_named_dot_dot_png_is_colorized_with_the_others(colorizer, tmp_path):
    """PIL finds no extension in "..png" (os.path.splitext): the batch must neither stop nor skip the rest."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, value in (("..png", 40), ("a.png", 120), ("b.png", 200)):
        Image.new("RGB", (32, 24), (value, value // 2, 30)).save(folder / name, format="PNG")
    from colorization.images import find_images

    results = dict(colorizer.colorize_files(find_images([folder]), tmp_path / "out", progress=False))
    assert sorted(p.name for p in results) == ["..png", "a.png", "b.png"]
    assert all(isinstance(p, Path) for p in results.values()), results
    for target in results.values():
        assert Image.open(target).format == "PNG" and Image.open(target).size == (32, 24)


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (9, 1), (2, 2)])
def test_tiny_photos_get_a_gray_baseline_and_scores(colorizer, size):
    from colorization.evaluation import score_prepared

    prepared = prepare(Image.new("RGB", size, (200, 60, 30)))
    gray = np.asarray(prepared.gray)
    assert gray.shape == size[::-1] + (3,) and (gray == gray[0, 0]).all()  # one gray for one colour
    result, scores = score_prepared(colorizer, prepared)
    assert result.size == size and scores["gray"]["psnr"] < 30 and scores["gray"]["colorfulness"] == 0


def test_a_name_at_the_length_limit_is_written(colorizer, tmp_path):
    """The temporary file beside the output must not need a longer name than the output (255 bytes)."""
    name = "a" * 251 + ".png"
    Image.new("RGB", (16, 12), (90, 140, 60)).save(tmp_path / name)
    ((_, target),) = colorizer.colorize_files([tmp_path / name], tmp_path / "out", progress=False)
    assert target == tmp_path / "out" / name and Image.open(target).size == (16, 12)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert read_image(path).size == (20, 40)


def test_bad_files_give_clear_errors(tmp_path, eval_photos):
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(ImageError, match="notes.png: not an image"):
        read_image(text)
    jpeg = io.BytesIO()
    Image.open(eval_photos[0]).convert("RGB").save(jpeg, "JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated.jpg: corrupt or truncated"):
        read_image(truncated)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png"):
        read_image(empty)


def test_megapixel_limit_is_a_clear_error(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (3000, 2000)).save(path)
    with pytest.raises(ImageError, match="6.0 megapixels, over the limit of 5"):
        read_image(path, max_megapixels=5)
    with pytest.raises(ImageError, match="over the limit"):
        prepare(np.zeros((3000, 2000), np.uint8), max_megapixels=5)


def test_8000x8000_gray_photo_within_memory(weights_file):
    # 64 megapixels in a fresh process, whose VmHWM (peak resident memory, reset by exec unlike ru_maxrss) is
    # this colorization's alone: it may add at most 48 bytes a pixel (3 GiB) to what the process held before.
    # The full-resolution arrays it needs (uint8 input and RGB, float32 L and ab, the output) are ~20 a pixel.
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc to read the peak memory")
    script = f"""
import re, numpy as np, torch
from PIL import Image
from colorization import load_colorizer
def mb(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024
torch.set_num_threads(1)
colorizer = load_colorizer({str(weights_file)!r}, device="cpu")
big = np.zeros((8000, 8000), np.uint8)
big[::2] = 200
image = Image.fromarray(big)
del big
before = mb("VmRSS")
out = colorizer(image, render_size=64)
assert out.size == (8000, 8000), out.size
print(before, mb("VmHWM"))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    before, peak = map(int, done.stdout.split()[-2:])
    assert peak - before < 3 * 1024, f"peak {peak} MB: {peak - before} MB over the {before} MB held before"


@pytest.mark.parametrize("height, width", [(1, 10_000), (10_000, 1), (3, 200_000)])
def test_extreme_shapes_bound_the_network_input(height, width):
    # A 1 x 10,000 strip once became a 128 x 1,280,000 network input and a 14 GB process.
    for size in (32, 256, 512):
        h, w = render_shape(height, width, size)
        assert max(h, w) <= MAX_ASPECT * size and min(h, w) <= size


def test_a_long_strip_is_colorized_within_a_memory_bound(weights_file):
    # In a fresh process, whose VmHWM (peak resident memory, reset by exec unlike ru_maxrss) is this
    # colorization's alone: a 1 x 10,000 strip (the 13 KB PNG that killed the server) and a 2 x 2,000,000 one,
    # at the largest render size the app offers.
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc to read the peak memory")
    script = f"""
import re, numpy as np, torch
from colorization import load_colorizer
torch.set_num_threads(1)
colorizer = load_colorizer({str(weights_file)!r}, device="cpu")
for shape in [(1, 10_000), (2, 2_000_000)]:
    out = colorizer(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8), render_size=512)
    assert out.size == shape[::-1], out.size
print(int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) < 1500, f"peak {done.stdout.split()[-1]} MB"


def test_gray_baseline_is_compose_of_zero_ab(eval_photos):
    from colorization.pipeline import compose

    for path in eval_photos[:3]:
        prepared = prepare(read_image(path))
        expected = np.asarray(compose(prepared.l, np.zeros(prepared.l.shape + (2,), np.float32)), dtype=int)
        diff = np.abs(np.asarray(prepared.gray, dtype=int) - expected)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-5  # a table over L; see test_color for the one level
    rgba = np.dstack([np.asarray(read_image(eval_photos[0]))[:40, :60], np.full((40, 60), 77, np.uint8)])
    gray = prepare(rgba).gray
    assert gray.mode == "RGBA" and (np.asarray(gray)[..., 3] == 77).all()


def test_score_prepared_scores_as_scikit_image(colorizer, eval_photos):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from colorization.evaluation import score_prepared

    prepared = prepare(read_image(eval_photos[1]))
    result, scores = score_prepared(colorizer, prepared, render_size=64)
    assert np.array_equal(np.asarray(result), np.asarray(colorizer.colorize_prepared(prepared, 64)))
    for part, image in (("model", np.asarray(result)), ("gray", np.asarray(prepared.gray))):
        assert scores[part]["psnr"] == peak_signal_noise_ratio(prepared.truth, image, data_range=255)
        expected = structural_similarity(prepared.truth, image, data_range=255, channel_axis=2, win_size=7)
        assert abs(scores[part]["ssim"] - expected) < 1e-9


def test_predict_ab_is_the_upsampled_low_resolution_prediction(colorizer, eval_photos):
    from colorization.pipeline import upsample_ab

    l = prepare(read_image(eval_photos[0])).l
    small = colorizer.predict_ab_small(l, 64)
    assert small.shape == render_shape(*l.shape, 64) + (2,)
    assert np.array_equal(colorizer.predict_ab(l, 64), upsample_ab(small, l.shape))


def test_a_temperature_must_be_a_positive_number(tmp_path):
    from colorization import load_colorizer
    from colorization.models import build_model
    from colorization.weights import save_weights

    path = tmp_path / "classification.safetensors"
    save_weights(path, build_model("unet", base_channels=4, depth=1, output="classification"), {})
    assert load_colorizer(path, "cpu", temperature=0.2).model.temperature == 0.2
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a positive number"):
            load_colorizer(path, "cpu", temperature=bad)


def test_available_weights_puts_the_best_recorded_gain_first(tmp_path):
    from colorization.models import build_model
    from colorization.pipeline import available_weights
    from colorization.weights import save_weights

    model = build_model("unet", base_channels=4, depth=1)

    def record(gains):
        folders = {f"f{i}": {"model": {"psnr": 20 + g}, "gray": {"psnr": 20.0}} for i, g in enumerate(gains)}
        return {"metrics": {"evaluation": {"folders": folders}}}

    save_weights(tmp_path / "a_pale.safetensors", model, record([0.2, 0.4]))
    save_weights(tmp_path / "b_best.safetensors", model, record([1.5, 0.9]))
    save_weights(tmp_path / "c_unmeasured.safetensors", model, {})
    save_weights(tmp_path / "d_tampered.safetensors", model, {"metrics": {"evaluation": {"folders": {"x": "nan"}}}})
    assert [p.name for p in available_weights(tmp_path)] == [
        "b_best.safetensors", "a_pale.safetensors", "c_unmeasured.safetensors", "d_tampered.safetensors"]
