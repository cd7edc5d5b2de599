import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from colorization import is_grayish
from colorization.data import decode_photos, random_resized_crop, split_files


def test_gray_and_tinted_photos_are_recognised(eval_photos):
    rgb = np.asarray(Image.open(eval_photos[0]).convert("RGB"), dtype=np.float32) / 255
    assert not is_grayish(rgb)
    assert not is_grayish((rgb * 255).round().astype(np.uint8))  # 8-bit pixels work as they are
    gray = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2)
    assert is_grayish(gray)
    sepia = gray * np.array([1.0, 0.85, 0.65], np.float32)
    assert is_grayish(sepia)


@pytest.mark.parametrize("black, mid, white", [("#2b1a0e", None, "#f5e6c8"), ("black", "#a0784c", "white"),
                                               ("#0a1a3a", None, "#e0f0ff"), ("#001030", "#3a6ea5", "white")])
def test_toned_old_photos_are_gray_photos_to_colorize(eval_photos, black, mid, white):
    # Sepia and cyanotype tone curves change hue with lightness, and JPEG adds chroma noise at edges.
    gray = Image.open(eval_photos[1]).convert("L")
    toned = ImageOps.colorize(gray, black=black, white=white, mid=mid)
    buffer = io.BytesIO()
    toned.save(buffer, "JPEG", quality=70)
    assert is_grayish(np.asarray(Image.open(buffer).convert("RGB")))
    assert not is_grayish(np.asarray(Image.open(eval_photos[1]).convert("RGB")))


def test_extreme_shapes_are_checked_on_a_bounded_sample():
    strip = np.zeros((1, 4_000_000, 3), np.uint8)
    strip[..., 0] = 200
    assert not is_grayish(strip) and is_grayish(strip[..., :1].repeat(3, axis=2))


def test_decode_skips_unreadable_and_gray_photos_and_names_them(tmp_path, train_photos):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    gray = tmp_path / "gray.png"
    Image.open(train_photos[0]).convert("L").save(gray)
    decoded = decode_photos([*train_photos[:4], bad, gray], size=32, workers=0, progress=False)
    assert decoded.images.shape == (4, 3, 32, 32) and decoded.images.dtype == torch.uint8
    assert decoded.files == train_photos[:4]
    assert any("broken.jpg" in s for s in decoded.skipped)
    assert any("gray.png" in s and "gray" in s for s in decoded.skipped)


def test_split_is_disjoint_and_seeded(train_photos):
    train, val = split_files(train_photos, 4, seed=0)
    assert len(val) == 3  # at most a fifth of a small set
    assert not set(train) & set(val) and len(train) + len(val) == len(train_photos)
    assert split_files(train_photos, 4, seed=0) == (train, val)


def test_random_resized_crop_shape_range_and_determinism():
    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    a = random_resized_crop(images, 24, generator=torch.Generator().manual_seed(1))
    b = random_resized_crop(images, 24, generator=torch.Generator().manual_seed(1))
    c = random_resized_crop(images, 24, generator=torch.Generator().manual_seed(2))
    assert a.shape == (6, 3, 24, 24) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_decode_cache_reads_back_what_it_decoded_and_decodes_only_new_photos(tmp_path, train_photos, monkeypatch):
    from colorization import data

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    first = decode_photos([*train_photos[:3], bad], size=32, workers=0, progress=False, cache_dir=tmp_path / "c")
    calls = []
    original = data.PhotoFolder.__getitem__
    monkeypatch.setattr(data.PhotoFolder, "__getitem__", lambda self, i: calls.append(i) or original(self, i))
    again = decode_photos([*train_photos[:3], bad], size=32, workers=0, progress=False, cache_dir=tmp_path / "c")
    assert calls == []  # everything, the broken file's verdict included, came from the cache
    assert torch.equal(again.images, first.images) and again.files == first.files
    assert again.skipped == first.skipped and "broken.jpg" in again.skipped[0]
    more = decode_photos(train_photos[:5], size=32, workers=0, progress=False, cache_dir=tmp_path / "c")
    assert calls == [3, 4] and more.images.shape[0] == 5  # only the two new photos were decoded
    assert torch.equal(more.images[:3], first.images)
    other_size = decode_photos(train_photos[:1], size=16, workers=0, progress=False, cache_dir=tmp_path / "c")
    assert other_size.images.shape == (1, 3, 16, 16)  # a different size never reads the 32 px shards
